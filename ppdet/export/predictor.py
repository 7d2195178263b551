"""``Predictor``: run an exported model (tools/export_model.py) on images.

    from ppdet.export import Predictor
    predictor = Predictor("output_inference/yolov3", backend="paddle", threads=2)
    results = predictor(["a.jpg", bgr_array])   # one dict per readable image

Preprocessing is the exported ``TestReader`` rebuilt with ppdet's transform classes, and the
results are unpacked by the same code as tools/infer.py's (``pipeline.py``), so the eager and
the deployed paths cannot drift. A result is ``{"im_file": path or None (array input),
"im_id": position in the input list, "bbox": float32 [n, 6] (class, score, x1, y1, x2, y2 in
original-image pixels)}`` plus ``"mask"`` uint8 [n, H, W] for mask models. Files that cannot be
read are skipped with a warning (``predictor.skipped``).

Backends: ``"paddle"`` (Paddle Inference, ``paddle_backend.py``: oneDNN + IR optimisation on the
CPU, GPU/TensorRT when available) and ``"onnx"`` (ONNX Runtime on ``model.onnx``, converted from
the Paddle model with paddle2onnx on first use, ``onnx_backend.py``). ``precision="bf16"``
(Paddle backend, CPU with oneDNN): bfloat16 kernels, opt-in (``paddle_backend.py``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .infer_cfg import INFER_CFG, InferConfig, read_infer_cfg, reader_config
from .paddle_backend import BackendError, PaddleSession, check_precision
from .pipeline import ImageInput, Preprocess, unpack_results

logger = logging.getLogger(__name__)

BACKENDS = ("paddle", "onnx")
STAGES = ("preprocess", "inference", "postprocess")


class Predictor:
    """An exported model ready to run (module docstring).

    Args:
        model_dir: the folder tools/export_model.py wrote (infer_cfg.yml + the model files).
        backend: ``"paddle"`` or ``"onnx"``.
        threads: CPU threads of the backend.
        device: ``"auto"``, ``"cpu"`` or ``"gpu"`` (Paddle backend; CPU when no GPU is usable).
        use_tensorrt: TensorRT on GPU (Paddle backend).
        batch_size: images per run (default: the exported TestReader's ``batch_size``).
        precision: ``"fp32"`` or ``"bf16"`` (Paddle backend on the CPU: oneDNN bfloat16
            kernels; ``session.precision`` says what runs).
    Attributes:
        info: the ``InferConfig`` read from infer_cfg.yml; ``labels``: class names by id;
        draw_threshold: infer_cfg.yml's; skipped: unreadable files of the latest call;
        timings: seconds per batch of each stage (``preprocess``, ``inference``,
        ``postprocess``), appended by every call (``reset_timings()`` clears them).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        backend: str = "paddle",
        threads: int = 2,
        device: str = "auto",
        use_tensorrt: bool = False,
        batch_size: int | None = None,
        precision: str = "fp32",
    ) -> None:
        model_dir = Path(model_dir)
        if backend not in BACKENDS:
            raise BackendError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        check_precision(precision)
        if backend == "onnx" and precision != "fp32":
            raise BackendError(
                f"precision {precision} runs on the paddle backend only (oneDNN); use "
                'backend="paddle" (--backend paddle) or precision fp32 with onnx'
            )
        if not model_dir.is_dir():
            raise BackendError(
                f"--model_dir {model_dir}: no such folder (write one with tools/export_model.py)"
            )
        cfg_path = model_dir / INFER_CFG
        self.info: InferConfig = read_infer_cfg(cfg_path)
        self.model_dir = model_dir
        self.backend = backend
        self.labels: list[str] = list(self.info.label_list)
        self.draw_threshold = self.info.draw_threshold
        self.preprocess = Preprocess(reader_config(self.info, cfg_path), batch_size)
        self.session = self._session(backend, threads, device, use_tensorrt, precision)
        missing = [n for n in self.session.input_names if n not in self.info.inputs]
        if missing:
            raise BackendError(f"{model_dir}: the model reads {missing}, not in {INFER_CFG}")
        self.timings: dict[str, list[float]] = {s: [] for s in STAGES}

    def _session(self, backend: str, threads: int, device: str, use_tensorrt: bool, precision: str):
        files = [self.model_dir / self.info.model_file, self.model_dir / self.info.params_file]
        for path in files:
            if not path.is_file():
                raise BackendError(
                    f"{path}: missing; the model folder is incomplete (re-export with "
                    "tools/export_model.py)"
                )
        if backend == "paddle":
            return PaddleSession(
                *files,
                threads=threads,
                device=device,
                use_tensorrt=use_tensorrt,
                precision=precision,
            )
        from . import onnx_backend  # says how to install the onnx extra when it is missing

        onnx_path = onnx_backend.onnx_model(self.model_dir)  # (re)converted when stale
        return onnx_backend.OnnxSession(onnx_path, threads)

    @property
    def max_pixels(self) -> int:
        """The ``Decode`` pixel limit of the exported reader (drawing reads images with it)."""
        return self.preprocess.max_pixels

    @property
    def skipped(self) -> list[str]:
        return self.preprocess.skipped

    def reset_timings(self) -> None:
        self.timings = {s: [] for s in STAGES}

    def __call__(self, images: Sequence[ImageInput] | ImageInput) -> list[dict]:
        """Detections for ``images`` (file paths and/or H x W x 3 BGR uint8 arrays; one image
        alone is accepted too): one result per readable image, in input order."""
        if isinstance(images, (str, os.PathLike, np.ndarray)):
            images = [images]
        results: list[dict] = []
        batches = iter(self.preprocess(list(images)))
        while True:
            start = time.perf_counter()
            try:
                batch, items = next(batches)
            except StopIteration:
                break
            loaded = time.perf_counter()
            outputs = self.session.run({n: batch[n] for n in self.session.input_names})
            ran = time.perf_counter()
            named = dict(zip(self.info.outputs, outputs))
            results.extend(unpack_results(named, batch, items))
            done = time.perf_counter()
            for stage, seconds in zip(STAGES, (loaded - start, ran - loaded, done - ran)):
                self.timings[stage].append(seconds)
        return results
