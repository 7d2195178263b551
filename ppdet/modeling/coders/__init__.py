"""Box coders: pure functions between boxes and regression targets."""

from .delta_bbox import DEFAULT_CLIP_RATIO, decode_deltas, encode_deltas  # noqa: F401
