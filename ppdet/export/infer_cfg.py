"""``infer_cfg.yml``: what an exported model needs besides its graph, as data.

Keys (docs/contracts.md, "Export"):

- ``version``: 1 (this layout).
- ``architecture``: the config's architecture (``YOLOv3``, ``FasterRCNN``, ...).
- ``model_file``, ``params_file``: the Paddle inference model in the same folder
  (``model.json`` or ``model.pdmodel``, ``model.pdiparams``).
- ``inputs``: ``[image, im_shape, scale_factor]`` less those the graph does not read (RetinaNet
  and SSD ignore ``im_shape``); ``outputs``: ``[bbox, bbox_num]`` (+
  ``mask``), the graph's fetch order.
- ``image_shape``: [3, H, W] the graph was exported for, -1 where the size is free;
  ``use_dynamic_shape``: true when H or W is free.
- ``TestReader``: ``sample_transforms`` / ``batch_transforms`` (``[{Name: {args}}]``, ppdet's
  transform classes, rebuilt by the Predictor) and ``batch_size``.
- ``label_list``: class names in class-id order; ``label_source``: where they came from.
- ``draw_threshold``: score from which the deploy script draws a box.
- ``metric``: the config's metric (COCO / VOC), for information.
- ``postprocess``: the post-process components inside the graph and their settings (NMS
  thresholds, top-k), for information; ``python_postprocess``: the steps run in Python after the
  graph (``pipeline.unpack_results``).
- ``weights``: the weights reference the model was exported with, for information.

PaddleDetection 2.6's deploy keys ride along (``paddledet_deploy.py``): ``mode``, ``arch``,
``min_subgraph_size``, ``mask``, ``Preprocess`` (its operator list, derived from ``TestReader``)
and ``paddledet_deploy`` (whether its deploy/python/infer.py can run the export, and if not
why); ``draw_threshold``, ``metric``, ``use_dynamic_shape`` and ``label_list`` are shared.
They are written, never read back: ``TestReader`` stays what ppdet's Predictor runs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml

from ppdet.config.errors import ConfigError

from .paddledet_deploy import deploy_keys
from .pipeline import MODEL_INPUTS

VERSION = 1
INFER_CFG = "infer_cfg.yml"
PYTHON_POSTPROCESS = {  # output -> what runs in Python after the graph, and why
    "mask": "crop each image's mask rows to its own original size (the graph returns one "
    "[N, H_max, W_max] tensor for the batch: a static graph has no per-image shapes)",
}


@dataclasses.dataclass
class InferConfig:
    """The contents of infer_cfg.yml (module docstring); ``reader`` is the ``TestReader``."""

    architecture: str
    model_file: str
    params_file: str
    inputs: list[str]
    outputs: list[str]
    image_shape: list[int]
    reader: dict
    label_list: list[str]
    label_source: str = ""
    draw_threshold: float = 0.5
    metric: str = ""
    postprocess: dict = dataclasses.field(default_factory=dict)
    weights: str = ""

    @property
    def use_dynamic_shape(self) -> bool:
        return any(s < 0 for s in self.image_shape[1:])

    def to_yaml_dict(self) -> dict:
        return {
            "version": VERSION,
            "architecture": self.architecture,
            "model_file": self.model_file,
            "params_file": self.params_file,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "image_shape": list(self.image_shape),
            "use_dynamic_shape": self.use_dynamic_shape,
            "TestReader": self.reader,
            "label_list": list(self.label_list),
            "label_source": self.label_source,
            "draw_threshold": self.draw_threshold,
            "metric": self.metric,
            "postprocess": self.postprocess,
            "python_postprocess": [
                f"{k}: {v}" for k, v in PYTHON_POSTPROCESS.items() if k in self.outputs
            ],
            "weights": self.weights,
            **deploy_keys(self.architecture, self.reader, self.outputs, self.model_file),
        }


def write_infer_cfg(info: InferConfig, path: str | os.PathLike) -> None:
    """Write ``info`` as YAML at ``path`` (atomically)."""
    from ppdet.atomic_io import atomic_write_text

    header = "# ppdet exported model: see docs/contracts.md (Export) for the keys\n"
    body = yaml.safe_dump(
        info.to_yaml_dict(), sort_keys=False, allow_unicode=True, default_flow_style=None
    )
    atomic_write_text(str(path), header + body)


REQUIRED = {  # key -> type
    "version": int,
    "architecture": str,
    "model_file": str,
    "params_file": str,
    "inputs": list,
    "outputs": list,
    "image_shape": list,
    "TestReader": dict,
    "label_list": list,
}


def read_infer_cfg(path: str | os.PathLike) -> InferConfig:
    """Read and check an ``infer_cfg.yml``; ConfigError (one line naming file and key) if it is
    missing, not YAML, of another version, or lacks a key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: not found: the model folder needs the infer_cfg.yml that "
            "tools/export_model.py writes"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    if "version" not in data and "Preprocess" in data:
        raise ConfigError(
            f"{path}: a PaddleDetection export (no version, no TestReader): ppdet runs models "
            "exported by its own tools/export_model.py; re-export the weights with it"
        )
    for key, kind in REQUIRED.items():
        if key not in data:
            raise ConfigError(f"{path}: {key}: missing; re-export with tools/export_model.py")
        if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
            raise ConfigError(f"{path}: {key}: expected {kind.__name__}, got {data[key]!r}")
    if data["version"] != VERSION:
        raise ConfigError(
            f"{path}: version: {data['version']} is not {VERSION}; re-export with this ppdet"
        )
    if "image" not in data["inputs"] or not set(data["inputs"]) <= set(MODEL_INPUTS):
        raise ConfigError(f"{path}: inputs: expected image and some of im_shape, scale_factor")
    if data["outputs"][:2] != ["bbox", "bbox_num"]:
        raise ConfigError(f"{path}: outputs: expected [bbox, bbox_num, ...]")
    return InferConfig(
        architecture=data["architecture"],
        model_file=data["model_file"],
        params_file=data["params_file"],
        inputs=list(data["inputs"]),
        outputs=list(data["outputs"]),
        image_shape=[int(s) for s in data["image_shape"]],
        reader=data["TestReader"],
        label_list=[str(n) for n in data["label_list"]],
        label_source=str(data.get("label_source") or ""),
        draw_threshold=float(data.get("draw_threshold", 0.5)),
        metric=str(data.get("metric") or ""),
        postprocess=dict(data.get("postprocess") or {}),
        weights=str(data.get("weights") or ""),
    )


def reader_config(info: InferConfig, path: str | os.PathLike) -> dict:
    """A config holding only ``TestReader`` (for ``pipeline.Preprocess``), whose errors name
    ``path``."""
    from ppdet.config.loader import Config

    cfg = Config({"TestReader": info.reader})
    cfg.path = str(path)
    return cfg
