# dipscope — every target sets itself up on a fresh machine (creates .venv, installs, runs).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# This environment ships a CPU build of torch 2.13.0 on local disk; pinning it here keeps the
# install fast and CUDA-free. pyproject.toml keeps a wide range for users.
TORCH_PIN ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: help install demo test docs bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[test,ray,docs]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install dipscope with its test and documentation tools

demo: $(STAMP)  ## denoise a bundled image, stopped by the default rule (2.5 min on a 2-core bf16 CPU, 4.5 min on an fp32 one); print PSNR and time
	$(VENV)/bin/dipscope demo --out demo-output --force

test: $(STAMP)  ## run the test suite
	$(PY) -m pytest -q

docs: $(STAMP)  ## build the documentation site into site/ (warnings are errors)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)  ## run the speed benchmark (minutes) and print its table
	$(PY) benchmarks/step_speed.py

clean:  ## remove the virtual environment, demo output and built site
	rm -rf $(VENV) demo-output site
