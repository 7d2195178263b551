# Two commands on a fresh machine: `make demo` (main job on the bundled demo data) and
# `make test` (the test suite). Both create .venv and install the pinned dependencies first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CFG := configs/yolov3/yolov3_mobilenet_v1_demo.yml
DEMO_OUT := output/yolov3_mobilenet_v1_demo
# Paddle's bundled MKL takes a slow path on AMD CPUs unless told otherwise (~1.9x here).
export MKL_DEBUG_CPU_TYPE ?= 5
export PYTHONWARNINGS ?= ignore::UserWarning:paddle.utils.cpp_extension.extension_utils

.PHONY: install demo test lint data clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e ".[test]"
	touch $@

data: install
	$(PY) dataset/generate_demo.py --out dataset/demo

demo: data
	$(PY) tools/train.py -c $(DEMO_CFG)
	$(PY) tools/eval.py -c $(DEMO_CFG) -o weights=$(DEMO_OUT)/model_final
	$(PY) tools/infer.py -c $(DEMO_CFG) -o weights=$(DEMO_OUT)/model_final \
		--infer_dir dataset/demo/samples --output_dir output/demo_infer

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install
	$(PY) -m pytest -q tests

clean:
	rm -rf output dataset/demo
