"""Paddle Inference backend of ``ppdet.export.Predictor``: an exported model in a
``paddle.inference`` predictor.

CPU (the default, and the fallback when this Paddle build has no CUDA or no GPU is visible):
oneDNN (MKL-DNN) kernels and IR optimisation on, ``threads`` math-library threads. GPU: when
``device`` is ``"gpu"`` (or ``"auto"`` on a CUDA build with a GPU), the model runs on GPU 0,
optionally through TensorRT (``use_tensorrt``; FP32, dynamic shapes taken from the first
inputs). The GPU and TensorRT lines are thin wrappers over ``paddle.inference.Config`` and are
not tested here (no GPU on the development machine).

Precision: ``"fp32"`` (default) or ``"bf16"``, opt-in: oneDNN's bfloat16 kernels on the CPU
(``Config.enable_mkldnn_bfloat16``: convolutions, matrix products and the ops between them run
in bf16, the rest in fp32). It pays on CPUs with native bf16 (AVX512-BF16 or AMX; measured
here: BENCHMARK.md, ``latency`` and ``precision``). Where it cannot run (a CPU that Paddle
says lacks bf16 support, a GPU, oneDNN switched off) the session warns once and runs fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ppdet.errors import PpdetError

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")
PRECISIONS = ("fp32", "bf16")


class BackendError(PpdetError, RuntimeError):
    """An exported model that a backend cannot load or run (one line naming the model)."""


def gpu_available() -> bool:
    """True on a CUDA build of Paddle that sees at least one GPU."""
    import paddle

    if not paddle.is_compiled_with_cuda():
        return False
    try:
        return paddle.device.cuda.device_count() > 0
    except Exception:  # a CUDA build on a machine without a driver
        return False


def cpu_bf16_support() -> tuple[bool, bool]:
    """(Paddle's oneDNN can run bf16 on this CPU (AVX512 core at least), the CPU has native bf16
    instructions (AVX512-BF16 or AMX): fast, not emulated), from Paddle's own CPU queries."""
    from paddle.base import core

    return bool(core.supports_bfloat16()), bool(core.supports_bfloat16_fast_performance())


def check_precision(precision: str) -> None:
    """BackendError (one line) unless ``precision`` is one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


class PaddleSession:
    """One ``paddle.inference`` predictor for ``model_file`` + ``params_file``.

    Args:
        model_file, params_file: the exported files (``model.json``/``.pdmodel``,
            ``.pdiparams``).
        threads: CPU math-library threads (ignored on GPU).
        device: ``"auto"`` (GPU when available, else CPU), ``"cpu"`` or ``"gpu"`` (falls back
            to the CPU with a warning when no GPU is usable).
        use_onednn: oneDNN kernels on the CPU (default on); ``ir_optim``: graph optimisation
            passes (default on).
        use_tensorrt: on GPU, run supported subgraphs through TensorRT (FP32).
        precision: ``"fp32"`` or ``"bf16"`` (oneDNN bfloat16 kernels on the CPU: module
            docstring; fp32 with one warning where bf16 cannot run).
    Attributes:
        input_names: the model's inputs, in order; ``device``: where it runs ("cpu" / "gpu");
        use_onednn: whether oneDNN is in use (a graph Paddle's oneDNN path cannot run, found
            at the first ``run``, is rebuilt without it, with one warning);
        precision: the precision in use ("bf16" only when oneDNN runs it; a bf16 graph that
            fails at the first ``run`` is rebuilt in fp32, with one warning).

    ``run(feeds)`` takes ``{name: array}`` for every input name and returns the outputs as
    NumPy arrays in the exported order.
    """

    def __init__(
        self,
        model_file: str | Path,
        params_file: str | Path,
        threads: int = 2,
        device: str = "auto",
        use_onednn: bool = True,
        ir_optim: bool = True,
        use_tensorrt: bool = False,
        precision: str = "fp32",
    ) -> None:
        if device not in DEVICES:
            raise BackendError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        check_precision(precision)
        if threads < 1:
            raise BackendError(f"threads must be >= 1, got {threads}")
        self.model_file, self.params_file = str(model_file), str(params_file)
        self.threads, self.ir_optim, self.use_tensorrt = int(threads), ir_optim, use_tensorrt
        on_gpu = device != "cpu" and gpu_available()
        if device == "gpu" and not on_gpu:
            logger.warning("device gpu: this Paddle build has no usable GPU; running on the CPU")
        if use_tensorrt and not on_gpu:
            logger.warning("use_tensorrt needs a GPU; running on the CPU without it")
        self.device = "gpu" if on_gpu else "cpu"
        self.use_onednn = use_onednn and not on_gpu
        self.precision = self._usable_precision(precision)
        self._predictor = self._create()
        self.input_names: list[str] = list(self._predictor.get_input_names())
        self._output_names = list(self._predictor.get_output_names())

    def _usable_precision(self, precision: str) -> str:
        """``precision``, or "fp32" (with one warning) where bf16 cannot run."""
        if precision == "fp32":
            return precision
        if self.device == "gpu":
            reason = "is a CPU (oneDNN) mode and this session runs on the GPU"
        elif not self.use_onednn:
            reason = "needs oneDNN (use_onednn is off)"
        else:
            supported, fast = cpu_bf16_support()
            if supported and not fast:
                logger.warning(
                    "precision bf16: this CPU has no native bf16 instructions (AVX512-BF16/AMX); "
                    "oneDNN emulates them, likely slower than fp32"
                )
            if supported:
                return precision
            reason = "is not supported by this CPU (Paddle's supports_bfloat16() is False)"
        logger.warning("precision bf16 %s: running fp32", reason)
        return "fp32"

    def _create(self):
        from paddle import inference

        config = inference.Config(self.model_file, self.params_file)
        config.disable_glog_info()
        config.switch_ir_optim(self.ir_optim)
        if self.device == "gpu":
            config.enable_use_gpu(256, 0)  # initial memory pool (MB), GPU id
            if self.use_tensorrt:
                config.enable_tensorrt_engine(
                    workspace_size=1 << 30,
                    max_batch_size=1,
                    min_subgraph_size=3,
                    precision_mode=inference.PrecisionType.Float32,
                    use_static=False,
                    use_calib_mode=False,
                )
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(self.threads)
            if self.use_onednn:
                config.enable_mkldnn()
                # Paddle 3.1.1's pass fuses an unsqueeze into the op before it and loses the axis
                # (the mask paste then fails with a broadcast error); without it all graphs run
                config.delete_pass("operator_unsqueeze_onednn_fuse_pass")
                if self.precision == "bf16":
                    config.enable_mkldnn_bfloat16()
            else:
                config.disable_mkldnn()
        try:
            return inference.create_predictor(config)
        except Exception as e:
            text = str(e).strip().splitlines()
            raise BackendError(
                f"{self.model_file}: Paddle Inference cannot load it: {text[-1] if text else e}"
            ) from e

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._run(feeds)
        except RuntimeError as e:
            if self.precision == "bf16":  # first retry: the same oneDNN path in fp32
                logger.warning(
                    "%s: Paddle Inference cannot run this model in bf16 (%s); running it in fp32",
                    self.model_file,
                    str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__,
                )
                self.precision = "fp32"
                self._predictor = self._create()
                return self.run(feeds)
            if not self.use_onednn:
                raise
            # a safety net: Paddle 3.1.1's oneDNN kernels have failed on graphs the plain CPU
            # kernels run (e.g. a slice with an empty result, now avoided in ppdet/ops/roi.py)
            logger.warning(
                "%s: Paddle Inference cannot run this model with oneDNN (%s); running it "
                "without oneDNN",
                self.model_file,
                str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__,
            )
            self.use_onednn = False
            self._predictor = self._create()
            return self._run(feeds)

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name in self.input_names:
            value = np.ascontiguousarray(feeds[name])
            handle = self._predictor.get_input_handle(name)
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(value)
        self._predictor.run()
        return [self._predictor.get_output_handle(n).copy_to_cpu() for n in self._output_names]
