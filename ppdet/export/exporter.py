"""Export a detector as a Paddle inference model plus ``infer_cfg.yml`` (tools/export_model.py).

The exported graph is the whole eval path, ``postprocess(forward(batch))``, traced by
``paddle.jit.to_static(full_graph=True)``: box decoding, NMS, the rescale to original-image
pixels and (Mask R-CNN) the mask paste all run inside it. Inputs and outputs follow
PaddleDetection's deploy convention:

- inputs ``image`` float32 [B, 3, H, W] (normalised, as the TestReader makes it), ``im_shape``
  float32 [B, 2] (h, w after resize), ``scale_factor`` float32 [B, 2] (resized / original);
- outputs ``bbox`` float32 [N, 6] (class, score, x1, y1, x2, y2 in original-image pixels),
  ``bbox_num`` int32 [B], and for mask models ``mask`` uint8 [N, H_max, W_max] (each image's
  rows valid inside its own original size; the Python side crops them, ``pipeline.py``).

``output_dir`` gets ``model.json`` (Paddle 3's PIR program; ``model.pdmodel`` from builds that
write the old format) + ``model.pdiparams`` and ``infer_cfg.yml`` (``infer_cfg.py``), written to a
temporary folder beside it and renamed into place, so a failed export leaves nothing half-made.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import paddle
from paddle import nn
from paddle.static import InputSpec

from ppdet.config.errors import ConfigError

from .infer_cfg import InferConfig, write_infer_cfg
from .pipeline import test_reader_section

logger = logging.getLogger(__name__)

SCALARS = (bool, int, float, str)
MODEL_PREFIX = "model"  # model.json / model.pdmodel + model.pdiparams


class InferenceGraph(nn.Layer):
    """``image, im_shape, scale_factor -> [bbox, bbox_num(, mask)]``: what is exported.

    ``model`` is a ppdet ``Detector`` in eval mode; ``outputs`` the names of its postprocess
    outputs in the exported order.
    """

    def __init__(self, model: nn.Layer, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, image, im_shape, scale_factor):
        batch = {"image": image, "im_shape": im_shape, "scale_factor": scale_factor}
        out = self.model.postprocess(self.model(batch), batch)
        return [out[name] for name in self.outputs]


def input_specs(image_shape: list[int]) -> list[InputSpec]:
    """InputSpecs of the exported inputs; ``image_shape`` [3, H, W] with -1 for a free size."""
    return [
        InputSpec([-1, *image_shape], "float32", "image"),
        InputSpec([-1, 2], "float32", "im_shape"),
        InputSpec([-1, 2], "float32", "scale_factor"),
    ]


def fixed_image_shape(reader: dict) -> list[int]:
    """[3, H, W] of every image the TestReader makes, -1 where it depends on the image.

    Fixed when the one resize is ``Resize(keep_ratio=False)`` to [h, w] (then rounded up to
    ``PadBatch.pad_to_stride``); free (-1, -1) for a keep-ratio resize or anything else.
    """
    ops = [next(iter(op.items())) for key in ("sample_transforms", "batch_transforms")
           for op in reader.get(key) or []]  # fmt: skip
    resizes = [(name, args or {}) for name, args in ops if "Resize" in name]
    if len(resizes) != 1 or resizes[0][0] != "Resize" or resizes[0][1].get("keep_ratio", True):
        return [3, -1, -1]
    size = resizes[0][1].get("target_size")
    h, w = (size, size) if isinstance(size, int) else (list(size) * 2)[:2]
    for name, args in ops:
        stride = int((args or {}).get("pad_to_stride", 0)) if name == "PadBatch" else 0
        if stride > 0:
            h, w = -(-h // stride) * stride, -(-w // stride) * stride
    return [3, int(h), int(w)]


def postprocess_settings(model: nn.Layer) -> dict:
    """The post-process components of ``model`` (registered role ``postprocess``) and their
    scalar settings, ``{"<attribute path>": {"type": ClassName, setting: value, ...}}``: a
    record of what the exported graph does (thresholds, top-k), for people; the Predictor does
    not read it."""
    from ppdet.config.registry import all_names

    names = set(all_names("postprocess"))
    found: dict[str, dict] = {}
    seen: set[int] = set()

    def visit(obj, path: str) -> None:
        parts = dict(obj.named_children()) if isinstance(obj, nn.Layer) else {}
        for key, value in vars(obj).items():
            if not key.startswith("_") and type(value).__name__ in names:
                parts.setdefault(key, value)
        for key, value in parts.items():
            if type(value).__name__ in names and id(value) not in seen:
                seen.add(id(value))
                settings = {"type": type(value).__name__}
                for k, v in vars(value).items():
                    if k != "training" and not k.startswith("_") and isinstance(v, SCALARS):
                        settings[k] = v
                found[f"{path}{key}"] = settings
            visit(value, f"{path}{key}.")

    visit(model, "")
    return found


def _output_names(model: nn.Layer, image_shape: list[int]) -> tuple[str, ...]:
    """The postprocess output keys of ``model``: ``bbox``, ``bbox_num`` (+ ``mask``), found by
    one eager run on a small zero image."""
    h, w = [s if s > 0 else 64 for s in image_shape[1:]]
    batch = {
        "image": paddle.zeros([1, 3, h, w], "float32"),
        "im_shape": paddle.to_tensor([[h, w]], "float32"),
        "scale_factor": paddle.ones([1, 2], "float32"),
    }
    out = model.predict(batch)
    extra = sorted(k for k in out if k not in ("bbox", "bbox_num"))
    return ("bbox", "bbox_num", *extra)


def _capture_constants(graph: InferenceGraph, static_forward) -> None:
    """Tensors the trace captured that are no parameter or buffer (e.g. anchor templates built
    once as eager tensors) become buffers of ``graph``, so ``paddle.jit.save`` stores them."""
    known = {v.name for v in graph.state_dict().values()}
    params = static_forward.concrete_program.parameters
    tensors = params[0] if isinstance(params, tuple) else params  # PIR: (tensors, values)
    for i, tensor in enumerate(tensors):
        if tensor.name not in known:
            graph.register_buffer(f"_captured_{i}", tensor, persistable=True)


def save_inference_model(
    model: nn.Layer, image_shape: list[int], prefix: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Trace ``model`` (eval mode) with its post-process and ``paddle.jit.save`` it at ``prefix``.

    Returns (input names, output names) in order: inputs the graph does not read (RetinaNet and
    SSD do not read ``im_shape``, as in PaddleDetection) are left out. Raises ConfigError naming the architecture when the
    trace fails (a model that does not convert to a static graph).
    """
    model.eval()
    outputs = _output_names(model, image_shape)
    graph = InferenceGraph(model, outputs)
    graph.eval()
    arch = type(model).__name__
    try:
        specs = input_specs(image_shape)
        static = paddle.jit.to_static(graph, input_spec=specs, full_graph=True)
        _capture_constants(graph, static.forward)
        unused = _unused_inputs(static.forward.concrete_program.main_program)
        specs = [s for s in specs if s.name not in unused]
        paddle.jit.save(static, prefix, input_spec=specs)
    except Exception as e:  # a dy2static failure is a long traceback: name the model first
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{arch}: cannot export to a static graph: {first}") from e
    return tuple(s.name for s in specs), outputs


def _unused_inputs(program) -> set[str]:
    """Names of the feed (``pd_op.data``) ops of a PIR program whose value nothing reads."""
    return {
        op.attrs()["name"]
        for op in program.global_block().ops
        if op.name() == "pd_op.data" and op.result(0).use_empty()
    }


def export_model(
    cfg: dict,
    weights: str,
    output_dir: str | os.PathLike,
    model: nn.Layer | None = None,
    draw_threshold: float = 0.5,
) -> Path:
    """Export the model of ``cfg`` with ``weights`` to ``output_dir`` (module docstring).

    Args:
        cfg: a loaded config (``ppdet.load_config``).
        weights: a path/prefix, URL or zoo name (loaded strictly, like tools/infer.py); "" only
            when ``model`` already holds its weights.
        output_dir: the folder to write; replaced as a whole if it exists.
        model: a built model to export instead of building one from ``cfg``.
        draw_threshold: the score from which deploy/python/infer.py draws a box.
    Returns the output folder.
    """
    from ppdet import build_model
    from ppdet.data.labels import resolve_labels
    from ppdet.zoo.weights import load_weights

    if not weights and model is None:
        raise ConfigError("no weights: pass -o weights=PATH (a file, URL or zoo name)")
    model = model if model is not None else build_model(cfg)
    weights_path = load_weights(model, weights, strict=True).path if weights else None
    model.eval()
    reader = test_reader_section(cfg)
    image_shape = fixed_image_shape(reader)
    labels = resolve_labels(cfg, weights or None, weights_path)

    out = Path(output_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        inputs, outputs = save_inference_model(model, image_shape, str(tmp / MODEL_PREFIX))
        model_file = next(
            f"{MODEL_PREFIX}{ext}"
            for ext in (".json", ".pdmodel")
            if (tmp / f"{MODEL_PREFIX}{ext}").is_file()
        )
        info = InferConfig(
            architecture=str(cfg["architecture"]),
            model_file=model_file,
            params_file=f"{MODEL_PREFIX}.pdiparams",
            inputs=list(inputs),
            outputs=list(outputs),
            image_shape=image_shape,
            reader=reader,
            label_list=list(labels.names),
            label_source=labels.source,
            draw_threshold=float(draw_threshold),
            metric=str(cfg.get("metric") or ""),
            postprocess=postprocess_settings(model),
            weights=str(weights or ""),
        )
        write_infer_cfg(info, tmp / "infer_cfg.yml")
        _replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported %s to %s (%s)", cfg["architecture"], out, ", ".join(outputs))
    return out


def _replace_dir(new: Path, target: Path) -> None:
    """Put the finished folder ``new`` at ``target``: a rename, after moving an old ``target``
    aside (removed once the new one is in place)."""
    old = None
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise ConfigError(f"--output_dir {target}: exists and is not a folder")
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / "previous")
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
