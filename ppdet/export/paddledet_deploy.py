"""PaddleDetection 2.6's deploy keys for ``infer_cfg.yml``, so that its deploy tooling
(``deploy/python/infer.py``, ``PredictConfig``) can read a ppdet export as well.

2.6's deploy reads from ``infer_cfg.yml``: ``mode`` ("paddle"), ``draw_threshold``, ``metric``,
``use_dynamic_shape``, ``arch`` (a model family; it must contain one of the names its deploy
supports), ``min_subgraph_size`` (TensorRT subgraph size of that family), ``mask`` (true: a
third output holds masks), ``Preprocess`` (a list of ``{type: Op, **args}`` run after it decodes
each image to RGB itself: ``Resize``, ``NormalizeImage``, ``Permute``, ``PadStride``, ``Pad``, ...)
and ``label_list``. Our own keys (``TestReader`` etc.) stay the source of truth for ppdet's
Predictor; the keys here are derived from them when the file is written.

How ppdet's TestReader operators map to 2.6's deploy operators:

- ``Decode``: none (2.6 decodes every image itself, to RGB as ppdet does).
- ``Resize``: ``Resize`` (target_size [h, w], keep_ratio, interp). Exact for
  ``keep_ratio: false``; with ``keep_ratio: true`` 2.6 resizes by the nominal scale and reports
  it as ``scale_factor``, ppdet by the ratio of the rounded sizes, so inputs and boxes can differ
  by a fraction of a pixel.
- ``NormalizeImage``: ``NormalizeImage`` (mean, std, is_scale, norm_type), exact.
- ``Permute``: ``Permute``, exact; ``Permute(to_bgr: true)`` (v0.1's SSD) has no 2.6 operator.
- ``RandomScaledCrop`` with ``scale_range: [1, 1]`` (evaluation): ``Resize`` of the long side to
  ``target_dim`` (keep_ratio) + ``Pad`` to a ``target_dim`` square with zeros; random scales have
  no 2.6 operator.
- ``PILResize`` (v0.1's Pillow resize): none (2.6 resizes with OpenCV only).
- ``PadBatch``: ``PadStride`` (stride = pad_to_stride); 2.6 pads a batch to its largest image
  itself, as PadBatch does.

When an operator has no 2.6 counterpart, ``Preprocess`` is left out (2.6's deploy then stops at
the missing key rather than feeding the model differently prepared images) and
``paddledet_deploy`` says which operator. Independently of this file, 2.6's deploy looks for
``model.pdmodel``: an export by Paddle 3 (``model.json``, PIR) is not loadable by it, and
not by renaming either (Paddle 3.1.1 segfaults reading the JSON as an old-format program).
"""

from __future__ import annotations

# 2.6's ppdet/engine/export_utils.py TRT_MIN_SUBGRAPH, the families ppdet's architectures belong
# to, in 2.6's order (the first whose name is part of the architecture's wins)
FAMILIES = (("YOLO", 3), ("SSD", 60), ("RCNN", 40), ("RetinaNet", 40), ("EfficientDet", 40))
# the families 2.6's deploy/python/infer.py accepts (its SUPPORT_MODELS, of those above)
DEPLOY_FAMILIES = ("YOLO", "SSD", "RCNN", "RetinaNet")


def family(architecture: str) -> tuple[str, int] | None:
    """(2.6's ``arch``, ``min_subgraph_size``) of an architecture, e.g. ``MaskRCNN`` ->
    ("RCNN", 40); None when 2.6 has no family for it."""
    for name, size in FAMILIES:
        if name in architecture:
            return name, size
    return None


def _map_op(name: str, args: dict) -> tuple[list[dict], str]:
    """2.6 deploy operators for one ppdet TestReader operator, and "" or why there are none.
    The operator is built (ppdet's class, its defaults) and its settings read back."""
    from ppdet.data.transforms.batch_ops import PadBatch
    from ppdet.data.transforms.decode_resize import Resize
    from ppdet.data.transforms.normalize import NormalizeImage, Permute
    from ppdet.data.transforms.scaled_crop import RandomScaledCrop

    if name == "Decode":
        return [], ""
    if name == "Resize":
        op = Resize(**args)
        resize = {"type": "Resize", "target_size": list(op.target_size)}
        return [{**resize, "keep_ratio": bool(op.keep_ratio), "interp": int(op.interp)}], ""
    if name == "NormalizeImage":
        op = NormalizeImage(**args)
        normalize = {"type": "NormalizeImage", "mean": op.mean, "std": op.std}
        return [{**normalize, "is_scale": bool(op.is_scale), "norm_type": op.norm_type}], ""
    if name == "Permute":
        if Permute(**args).to_bgr:
            return [], "Permute(to_bgr: true) has no 2.6 deploy operator (2.6 feeds RGB)"
        return [{"type": "Permute"}], ""
    if name == "RandomScaledCrop":
        op = RandomScaledCrop(**args)
        if op.scale_range != [1.0, 1.0]:
            return [], f"RandomScaledCrop(scale_range: {op.scale_range}) is random"
        dim = op.target_dim
        resize = {"type": "Resize", "target_size": [dim, dim], "keep_ratio": True}
        pad = {"type": "Pad", "size": [dim, dim], "fill_value": [0.0, 0.0, 0.0]}
        return [{**resize, "interp": int(op.interp)}, pad], ""
    if name == "PadBatch":
        return [{"type": "PadStride", "stride": PadBatch(**args).pad_to_stride}], ""
    if name == "PILResize":
        return [], "PILResize (Pillow) has no 2.6 deploy operator (2.6 resizes with OpenCV)"
    return [], f"{name} has no 2.6 deploy operator"


def deploy_preprocess(reader: dict) -> tuple[list[dict] | None, list[str]]:
    """2.6's ``Preprocess`` list for ppdet's exported ``TestReader`` (``{sample_transforms,
    batch_transforms}`` as ``[{Name: {args}}]``), or None, and the reasons it is None."""
    ops: list[dict] = []
    problems: list[str] = []
    for key in ("sample_transforms", "batch_transforms"):
        for entry in reader.get(key) or []:
            ((name, args),) = entry.items()
            mapped, problem = _map_op(name, dict(args or {}))
            ops.extend(mapped)
            if problem:
                problems.append(problem)
    return (None if problems else ops), problems


def deploy_keys(architecture: str, reader: dict, outputs: list[str], model_file: str) -> dict:
    """The 2.6 deploy keys that ppdet's own keys do not already carry (``draw_threshold``,
    ``metric``, ``use_dynamic_shape`` and ``label_list`` are shared): ``mode``, ``arch``,
    ``min_subgraph_size``, ``mask``, ``Preprocess``, and ``paddledet_deploy``, one line on
    whether 2.6's deploy/python/infer.py can run the export."""
    keys: dict = {"mode": "paddle"}
    problems = []
    found = family(architecture)
    if found is None:
        problems.append(f"architecture {architecture} has no 2.6 deploy family")
    else:
        keys["arch"], keys["min_subgraph_size"] = found
        if found[0] not in DEPLOY_FAMILIES:
            problems.append(f"2.6's deploy does not run {found[0]} models")
    keys["mask"] = "mask" in outputs
    preprocess, reasons = deploy_preprocess(reader)
    if preprocess is not None:
        keys["Preprocess"] = preprocess
    problems += reasons
    if problems:
        note = "not for PaddleDetection 2.6's deploy: " + "; ".join(problems)
    else:
        note = "PaddleDetection 2.6's deploy keys complete"
        if model_file != "model.pdmodel":
            note += f" (its loader opens model.pdmodel; this export is {model_file}, Paddle 3's)"
    keys["paddledet_deploy"] = note
    return keys
