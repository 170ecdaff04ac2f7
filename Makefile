# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-all clean side-envs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

venv: $(STAMP)

# Side environments the tests run real software in, without TensorFlow:
#   .venv-rt-litert   numpy, Pillow, ai-edge-litert       (the edgecls runtime on a device)
#   .venv-rt-tflite   numpy<2, Pillow, tflite-runtime 2.14 (what Raspberry Pi OS users install)
#   .venv-mediapipe   mediapipe 1.2.2                     (exported models in MediaPipe Tasks)
SIDE_ENVS := .venv-rt-litert .venv-rt-tflite .venv-mediapipe

.venv-rt-%/.installed: tests/runtime/requirements-%.txt
	rm -rf .venv-rt-$*
	$(PYTHON) -m venv .venv-rt-$*
	.venv-rt-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-rt-$*/bin/python -m pip install --quiet -r $<
	touch $@

.venv-mediapipe/.installed: tests/export/requirements-mediapipe.txt
	rm -rf .venv-mediapipe
	$(PYTHON) -m venv .venv-mediapipe
	.venv-mediapipe/bin/python -m pip install --quiet --upgrade pip
	.venv-mediapipe/bin/python -m pip install --quiet -r $<
	touch $@

side-envs: $(addsuffix /.installed,$(SIDE_ENVS))

# The main job on built-in data: train the digits recipe, compress it, export every TFLite variant,
# benchmark them here (clean and under 6 corruptions x 3 severities); ends with the accuracy/latency table,
# the Pareto plot's path and what compression changed besides top-1 (drift.md).
# Stages already complete in runs/digits are kept (`make clean` starts over).
demo: venv
	$(VENV)/bin/edgecls run recipes/digits.yaml --device local --corruptions all

test: venv side-envs
	$(PY) -m pytest

# Also the tests marked slow.
test-all: venv side-envs
	$(PY) -m pytest -m ''

clean:
	rm -rf $(VENV) $(SIDE_ENVS) runs .pytest_cache
