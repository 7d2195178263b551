"""ONNX for exported models: ``paddle2onnx`` conversion and an ``onnxruntime`` session.

``convert(model_dir)`` turns the Paddle inference model that ``ppdet.export.export_model``
wrote (``model.json`` or ``model.pdmodel`` + ``model.pdiparams``) into ``model_dir/model.onnx``;
``OnnxSession(path, threads)`` runs it and returns the outputs in the exported order
(``bbox`` [N, 6], ``bbox_num`` [B], and ``mask`` [N, H_max, W_max] for mask models). Both
libraries are the optional extra ``ppdet[onnx]``; importing this module does not need them.

What converts (paddle2onnx 2.1.0, onnxruntime 1.32, Paddle 3.1.1; tests/export/test_onnx.py
compares the detections with Paddle's):

- YOLOv3, SSD, RetinaNet: yes, post-process (decode + multi-class NMS) inside the graph.
  paddle2onnx's ``multiclass_nms3`` handles one image per run, so ``OnnxSession.run`` feeds a
  batch image by image and concatenates the results. Its ``nms_top_k`` means something else
  in ONNX (a cap after the suppression; -1 gives no boxes): ``ppdet/ops/nms.py`` applies the
  top-k itself in traced graphs, which keeps Paddle's detections.
- Faster / Mask / Cascade (Mask) R-CNN: no. paddle2onnx has no mapping for
  ``generate_proposals``, ``distribute_fpn_proposals`` and ``repeat_interleave`` with a
  tensor of repeats, and its ``multiclass_nms3`` takes only dense [B, C, N] scores, not the
  per-RoI layout. ``convert`` says so, naming the operators; use the Paddle Inference backend.

paddle2onnx aborts its whole process (SIGABRT) on an operator it cannot map, printing an empty
list of names, so the conversion runs in a child process and the parent names the operators
itself from the program (``unconvertible_ops``).
"""

from __future__ import annotations

import importlib
import logging
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ppdet.errors import PpdetError

__all__ = ["OnnxError", "OnnxSession", "convert", "onnx_model", "unconvertible_ops"]

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
DEFAULT_OPSET = 16  # Min/Max on int64 (top-k sizes) need >= 12; paddle2onnx may raise it
INSTALL_HINT = 'pip install "ppdet[onnx]"'

# PIR operator name -> the name paddle2onnx registers its mapper under (where they differ)
MAPPER_NAMES = {
    "add": "elementwise_add",
    "subtract": "elementwise_sub",
    "multiply": "elementwise_mul",
    "divide": "elementwise_div",
    "floor_divide": "elementwise_floordiv",
    "remainder": "elementwise_mod",
    "maximum": "elementwise_max",
    "minimum": "elementwise_min",
    "add_n": "sum",
    "arange": "range",
    "matmul": "matmul_v2",
    "max": "reduce_max",
    "min": "reduce_min",
    "sum": "reduce_sum",
    "mean": "reduce_mean",
    "prod": "reduce_prod",
    "all": "reduce_all",
    "any": "reduce_any",
    "topk": "top_k_v2",
    "nonzero": "where_index",
    "unsqueeze": "unsqueeze2",
    "flatten": "flatten_contiguous_range",
    "expand": "expand_v2",
}
STRUCTURAL = {"data", "feed", "fetch", "if", "while", "yield", "a_dtype", "a_intarray", "a_place"}


class OnnxError(PpdetError):
    """The ONNX extra is missing, or a model does not convert to / run in ONNX."""


def _require(module: str):
    """Import ``module`` of the onnx extra, or OnnxError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxError(
            f"{module} is not installed: the ONNX backend (backend onnx) is an optional extra: "
            f'install it with {INSTALL_HINT}, or run with backend "paddle"'
        ) from None


def _model_files(model_dir: Path) -> tuple[Path, Path, str]:
    """(program file, params file, architecture) of an exported model folder."""
    arch = "unknown architecture"
    names = [("model.json", "model.pdiparams"), ("model.pdmodel", "model.pdiparams")]
    if (model_dir / "infer_cfg.yml").is_file():
        from .infer_cfg import read_infer_cfg

        info = read_infer_cfg(model_dir / "infer_cfg.yml")
        arch = info.architecture
        names.insert(0, (info.model_file, info.params_file))
    for program, params in names:
        if (model_dir / program).is_file():
            return model_dir / program, model_dir / params, arch
    raise OnnxError(
        f"{model_dir}: no exported model (model.json or model.pdmodel): "
        "export it first with tools/export_model.py"
    )


def unconvertible_ops(program_file: str | Path) -> list[str]:
    """The operators of a PIR program (``model.json``) that paddle2onnx has no mapper for,
    sorted, as ``pd_op.<name>``; [] for the old ``.pdmodel`` format (not inspected)."""
    program_file = Path(program_file)
    if program_file.suffix != ".json":
        return []
    c_p2o = _require("paddle2onnx.paddle2onnx_cpp2py_export")
    supported = set(c_p2o.get_all_supported_operators_pir())
    text = program_file.read_text(encoding="utf-8")
    ops = set(re.findall(r'"#"\s*:\s*"1\.([A-Za-z0-9_]+)"', text))  # dialect 1: pd_op
    missing = []
    for op in ops:
        name = op[:-1] if op.endswith("_") and op not in supported else op  # in-place variant
        if name in STRUCTURAL or name in supported or MAPPER_NAMES.get(name) in supported:
            continue
        missing.append(f"pd_op.{op}")
    return sorted(missing)


# The child process: convert and write the result.
_CHILD = r"""
import sys
import paddle2onnx
program, params, opset, out = sys.argv[1:5]
try:
    data = paddle2onnx.export(program, params, None, opset_version=int(opset),
                              auto_upgrade_opset=True, enable_onnx_checker=True)
except Exception as e:  # paddle2onnx logs its error, then fails to return anything
    print(f"paddle2onnx failed: {e}", file=sys.stderr)
    sys.exit(3)
with open(out, "wb") as f:
    f.write(data)
"""


def convert(model_dir: str | Path, opset: int | None = None, timeout: float = 1800) -> Path:
    """Convert the exported model in ``model_dir`` to ``model_dir/model.onnx`` (written
    atomically) and return its path.

    opset: the ONNX opset to start from (default 16; paddle2onnx raises it if an operator needs
    more). Raises OnnxError (one line: the folder, the architecture from infer_cfg.yml, the
    operators that do not convert and what to do) when the conversion fails.
    """
    from ppdet.atomic_io import atomic_path

    _require("paddle2onnx")
    _require("onnxruntime")
    model_dir = Path(model_dir)
    program, params, arch = _model_files(model_dir)
    target = model_dir / ONNX_FILE
    with atomic_path(str(target)) as tmp:
        cmd = [sys.executable, "-c", _CHILD, str(program), str(params), str(opset or DEFAULT_OPSET)]
        try:
            done = subprocess.run(
                [*cmd, tmp], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise OnnxError(
                f"{model_dir} ({arch}): paddle2onnx did not finish within {timeout:.0f} s"
            ) from None
        if done.returncode != 0 or Path(tmp).stat().st_size == 0:
            raise OnnxError(_failure_message(model_dir, arch, program, done))
        _fix_nms_score_gather(tmp)
        try:
            ort = _require("onnxruntime")
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only
            ort.InferenceSession(tmp, options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise OnnxError(
                f"{model_dir} ({arch}) does not convert to ONNX: onnxruntime rejects the "
                f'converted model: {_first_line(e)}; run it with backend="paddle" instead'
            ) from e
        for line in done.stdout.splitlines() + done.stderr.splitlines():
            if "[WARNING][Paddle2ONNX]" in line:
                logger.info("%s: %s", model_dir, line.strip())
    logger.info("converted %s (%s) to %s", model_dir, arch, target)
    return target


def _fix_nms_score_gather(path: str) -> None:
    """Repair paddle2onnx's ``multiclass_nms3`` when the box count N is unknown at conversion.

    The mapper gathers each kept box's score from the flattened scores [C * N] at
    ``class * N + box``, with N a constant taken from the static shape: -1 when N is only known
    at run time (RetinaNet's per-level top-k, SSD), which picks wrong scores. The constant is
    replaced by ``Shape(scores)[2]``, computed in the graph. Rewrites the file at ``path``.
    """
    onnx = _require("onnx")
    from onnx import helper, numpy_helper

    model = onnx.load(path)
    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producer = {out: node for node in graph.node for out in node.output}
    nodes = list(graph.node)
    changed = False
    for nms in [n for n in nodes if n.op_type == "NonMaxSuppression"]:
        scores, selected = nms.input[1], nms.output[0]
        for mul in [n for n in nodes if n.op_type == "Mul"]:
            consts_in = [x for x in mul.input if x in consts and consts[x].tolist() == [-1]]
            other = [x for x in mul.input if x not in consts_in]
            source = producer.get(other[0]) if len(other) == 1 else None
            while source is not None and source.op_type == "Gather" and source.input[0] != selected:
                source = producer.get(source.input[0])  # class ids filtered (background)
            if not consts_in or source is None or source.op_type != "Gather":
                continue  # not the class column of the selected indices
            shape, count = f"{mul.name}.scores_shape", f"{mul.name}.box_count"
            index = f"{mul.name}.box_axis"
            graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), index))
            at = list(graph.node).index(mul)
            graph.node.insert(at, helper.make_node("Shape", [scores], [shape]))
            graph.node.insert(at + 1, helper.make_node("Gather", [shape, index], [count], axis=0))
            mul.input[list(mul.input).index(consts_in[0])] = count
            changed = True
    if changed:
        onnx.save(model, path)


def _failure_message(model_dir: Path, arch: str, program: Path, done) -> str:
    """One line: which model, which operators (or paddle2onnx's last error), what to do."""
    use_paddle = 'run it with backend="paddle" (Paddle Inference) instead'
    missing = unconvertible_ops(program)
    if missing:
        return (
            f"{model_dir} ({arch}) does not convert to ONNX: paddle2onnx has no mapping for "
            f"{', '.join(missing)}; {use_paddle}"
        )
    lines = [
        line.strip()
        for line in (done.stderr + "\n" + done.stdout).splitlines()
        if re.search(r"error|failed|rejects|not support", line, re.IGNORECASE)
        and "Traceback" not in line
    ]
    reason = lines[-1] if lines else f"paddle2onnx exited with status {done.returncode}"
    return f"{model_dir} ({arch}) does not convert to ONNX: {reason}; {use_paddle}"


def onnx_model(model_dir: str | Path, opset: int | None = None) -> Path:
    """``model_dir/model.onnx``, converted first when missing or older than the Paddle model."""
    model_dir = Path(model_dir)
    target = model_dir / ONNX_FILE
    program, params, _ = _model_files(model_dir)
    sources = [p for p in (program, params) if p.is_file()]
    if target.is_file() and all(target.stat().st_mtime >= p.stat().st_mtime for p in sources):
        return target
    return convert(model_dir, opset)


class OnnxSession:
    """An onnxruntime CPU session of an exported detector (``convert``'s ``model.onnx``).

    ``input_names``: the graph's inputs (``image`` and the ones of ``im_shape``,
    ``scale_factor`` it reads). ``run(feeds)`` -> the outputs in the exported order: ``bbox``
    [N, 6] float32, ``bbox_num`` [B] int32 (and ``mask`` [N, H_max, W_max]). A batch runs image
    by image (the converted NMS handles one image) and is concatenated, masks zero-padded to
    the batch's largest size, as the Paddle graph returns them.
    """

    def __init__(self, onnx_path: str | Path, threads: int = 2) -> None:
        ort = _require("onnxruntime")
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise OnnxError(f"{self.path}: not found: convert the exported model first")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only (not unused-initializer warnings)
        try:
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own types for a bad file
            raise OnnxError(f"{self.path}: onnxruntime cannot load it: {_first_line(e)}") from e
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run on ``feeds`` (name -> array; names the graph does not read are ignored)."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise OnnxError(f"{self.path}: inputs {missing} not given (needs {self.input_names})")
        feeds = {n: np.ascontiguousarray(feeds[n], dtype=np.float32) for n in self.input_names}
        batch = len(feeds["image"]) if "image" in feeds else 1
        if any(len(v) != batch for v in feeds.values()):
            shapes = {n: list(v.shape) for n, v in feeds.items()}
            raise OnnxError(f"{self.path}: inputs of different batch sizes: {shapes}")
        runs = [self._run_one({n: v[b : b + 1] for n, v in feeds.items()}) for b in range(batch)]
        if batch == 1:
            return runs[0]
        return [_concat([r[i] for r in runs]) for i in range(len(self.output_names))]

    def _run_one(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._session.run(None, feeds)
        except Exception as e:
            shapes = {n: list(v.shape) for n, v in feeds.items()}
            raise OnnxError(f"{self.path}: onnxruntime failed on {shapes}: {_first_line(e)}") from e


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    """Row-concatenate per-image outputs; trailing sizes (mask H, W) zero-padded to the max."""
    if parts[0].ndim > 1:
        size = np.max([p.shape[1:] for p in parts], axis=0)
        parts = [
            np.pad(p, [(0, 0)] + [(0, int(s) - d) for s, d in zip(size, p.shape[1:])])
            for p in parts
        ]
    return np.concatenate(parts, axis=0)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
