# The README's two commands - `make notebooks` and `make test` - each do all of their own set-up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
# nbval's limit per notebook cell, in seconds. The longest cell (notebook 07's six runs) takes about
# 7.5 minutes on a 2-core CPU without native bfloat16 (float32); raise the limit on a slower machine,
# e.g. `make test NBVAL_CELL_TIMEOUT=3600` (see the README).
NBVAL_CELL_TIMEOUT ?= 1200
# The venv's tools come first, so Jupyter kernels start with the venv's Python.
export PATH := $(BIN):$(PATH)

.PHONY: notebooks test dry-run lab setup data clean

# Recorded sample runs are removed first, so that the notebooks train them with the current code
# (a notebook loads a finished run instead of training it again).
notebooks: data  ## execute every notebook in place (sample profile), refreshing outputs and pictures/
	rm -rf runs/03_fcn/sample runs/04_ablation/sample runs/05_memory_and_speed/sample runs/06_deeplabv3plus/sample runs/07_pspnet/sample runs/08_cityscapes/sample runs/09_ade20k_lightning/sample runs/09_ade20k_experiments/sample runs/10_grasping/sample
	SEG_PROFILE=sample $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.record_timing=False \
	    notebooks/[0-9][0-9]_*.ipynb

# The notebooks train into a temporary folder, deleted afterwards: every `make test` trains with the
# current code (recorded runs in runs/ would be loaded instead), leaves runs/ and pictures/ as they
# were, and does not leave the ~9 GB of checkpoints behind.
test: data  ## unit tests, then every notebook under nbval (outputs must match what is committed)
	$(BIN)/python -m pytest -q tests
	scratch=$$(mktemp -d -t seg-test-XXXXXX) && trap 'rm -rf "$$scratch"' EXIT && \
	SEG_PROFILE=sample SEG_RUNS="$$scratch/runs" SEG_PICTURES="$$scratch/pictures" \
	    $(BIN)/python -m pytest -q --nbval --nbval-current-env --nbval-cell-timeout=$(NBVAL_CELL_TIMEOUT) notebooks

# The full profile, proven offline: every notebook with SEG_PROFILE=full SEG_DRY_RUN=1 on stand-in data
# and weights in a temporary folder (tools/dry_run.py; the committed notebooks stay untouched).
dry-run: setup  ## every notebook in the full profile, a couple of batches per run (see README)
	$(BIN)/python tools/dry_run.py

lab: setup  ## Jupyter Lab in the project's environment
	$(BIN)/jupyter lab notebooks

setup: $(STAMP)

# d2l goes in with --no-deps: its pins (numpy 1.23.5, ...) do not install on Python 3.12+.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[book,dev]"
	$(BIN)/python -m pip install --quiet --no-deps "d2l==1.0.3"
	$(BIN)/python -c "import torch, torchvision, d2l, matplotlib.pyplot; print('torch', torch.__version__, '| torchvision', torchvision.__version__)"
	touch $(STAMP)

data: setup  ## the offline sample datasets (a no-op once built)
	PYTHON=$(BIN)/python bash download_data.sh sample

clean:  ## remove the environment and generated data (downloaded real data stays)
	rm -rf $(VENV) data/sample
