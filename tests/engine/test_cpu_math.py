"""The CPU math settings the tools fix before Paddle loads (thread count, no dynamic threads)."""

import os
import subprocess
import sys

import paddle
import pytest

from ppdet.engine.cpu_math import FIXED_DEFAULTS, cpu_math_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AMD = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n"
INTEL = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx avx2 fma\n"
MKL_LIB = os.path.join(os.path.dirname(paddle.__file__), "libs", "libmklml_intel.so")


def test_missing_variables_get_fixed_values():
    assert cpu_math_env({}, INTEL) == {
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MKL_DYNAMIC": "FALSE",
        "OMP_DYNAMIC": "FALSE",
    }
    assert cpu_math_env({}, AMD) == {**FIXED_DEFAULTS, "MKL_DEBUG_CPU_TYPE": "5"}
    assert "MKL_DEBUG_CPU_TYPE" not in cpu_math_env({}, AMD.replace(" avx2", ""))


def test_values_in_the_environment_are_kept():
    env = {"OMP_NUM_THREADS": "4", "MKL_DEBUG_CPU_TYPE": "4", "MKL_DYNAMIC": "TRUE"}
    assert cpu_math_env(env, AMD) == {
        "MKL_NUM_THREADS": "1",
        "OMP_DYNAMIC": "FALSE",
    }


def _mkl_state(extra_env: dict) -> tuple[int, int]:
    """(MKL max threads, MKL dynamic) in a fresh process that runs configure_cpu_math, then
    imports Paddle and multiplies two matrices."""
    code = (
        "import ctypes, sys\n"
        "from ppdet.engine.cpu_math import configure_cpu_math\n"
        "configure_cpu_math()\n"
        "import paddle\n"
        "a = paddle.ones([64, 64]); (a @ a).numpy()\n"
        f"mkl = ctypes.CDLL({MKL_LIB!r})\n"
        "print(mkl.MKL_Get_Max_Threads(), mkl.MKL_Get_Dynamic())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in FIXED_DEFAULTS}
    env.update(PYTHONPATH=ROOT, MKL_DEBUG_CPU_TYPE="5", **extra_env)  # preset: no restart
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    threads, dynamic = out.stdout.split()[-2:]
    return int(threads), int(dynamic)


@pytest.mark.skipif(not os.path.isfile(MKL_LIB), reason="this Paddle build has no bundled MKL")
def test_mkl_uses_exactly_the_threads_asked_for():
    assert _mkl_state({}) == (1, 0)  # MKL's own default is dynamic (1)
    assert _mkl_state({"MKL_NUM_THREADS": "2"}) == (2, 0)


def _train_log(data_dir: str, out_dir: str, hash_seed: str) -> tuple[list[str], bytes]:
    """(loss lines without timings, final weights' bytes) of a 4-iteration tools/train.py run
    in a fresh process that fixes its own CPU math (no preset thread variables)."""
    from tests.conftest import DEMO_CONFIG, tiny_overrides

    env = {k: v for k, v in os.environ.items() if k not in FIXED_DEFAULTS}
    env.update(PYTHONPATH=ROOT, PYTHONHASHSEED=hash_seed, PYTHONWARNINGS="ignore")
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", DEMO_CONFIG]
        + ["-o", *tiny_overrides(data_dir, out_dir), "snapshot_epoch=2"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    lines = [line.split(" time: ")[0] for line in out.stdout.splitlines() if "loss:" in line]
    final = os.path.join(out_dir, "yolov3_mobilenet_v1_demo", "model_final.pdparams")
    with open(final, "rb") as f:
        return lines, f.read()


def test_training_is_the_same_in_two_fresh_processes_on_a_busy_machine(tiny_demo_data, tmp_path):
    first = _train_log(tiny_demo_data, str(tmp_path / "a"), hash_seed="1")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # keeps a core busy
    try:
        second = _train_log(tiny_demo_data, str(tmp_path / "b"), hash_seed="2")
    finally:
        hog.kill()
        hog.wait()
    assert len(first[0]) == 4, first[0]  # 2 epochs x 2 iterations, each logged
    assert first[0] == second[0]
    assert first[1] == second[1]  # bit-identical weights
