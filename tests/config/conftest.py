"""The tiny COCO set of tests/data, for config tests that build datasets."""

from tests.data.conftest import make_coco, tiny_coco  # noqa: F401  (fixtures)
