# The workbook's commands. Each one creates a virtual environment and installs requirements.txt when needed.
#   make run            execute every notebook headless, in order -> data/models, data/results, data/runs
#   make test           helpers' unit tests and every notebook under nbval, from a fresh data folder
#   make test-recipes   every cell tagged `recipe` run alone, without the workbook, as a reader pasting it would
#   make test-solutions the worked solutions (notebooks/solutions) under nbval
#   make unit           only the helpers' unit tests
#   make lab            JupyterLab on notebooks/
#   make quick          only the variants notebooks 07, 07b and 08 need (a workshop's quick path, ~2 min)
#   make test-browser   JupyterLab driven by headless Chromium: notebook 07 run through the UI, the report opened
# Any of them on another Python (3.11, 3.12 or 3.13), in its own environment .venv-3.X:
#   make test PYTHON=python3.13
DEFAULT_PYTHON := $(shell command -v python3.11 || command -v python3)
PYTHON ?= $(DEFAULT_PYTHON)

# "<executable> <X.Y>" of an interpreter; a name that is not on PATH may still be installed by pyenv
# (python3.13 -> ~/.pyenv/versions/3.13.*/bin/python3.13). One start of each interpreter, resolved past shims.
INFO_CODE := import sys; print(sys.executable, "%d.%d" % sys.version_info[:2])
probe = $(shell "$(1)" -c '$(INFO_CODE)' 2>/dev/null || for p in $$(ls -d "$$(pyenv root 2>/dev/null)"/versions/*/bin/"$(notdir $(1))" 2>/dev/null | sort -rV); do "$$p" -c '$(INFO_CODE)' 2>/dev/null && break; done)
PYINFO  := $(call probe,$(PYTHON))
PY      := $(word 1,$(PYINFO))
PYVER   := $(word 2,$(PYINFO))
DEFAULT_PYVER := $(if $(filter $(PYTHON),$(DEFAULT_PYTHON)),$(PYVER),$(word 2,$(call probe,$(DEFAULT_PYTHON))))
# The default interpreter keeps .venv; any other version gets its own .venv-3.X (and its own test data folder).
SUFFIX  := $(if $(filter $(DEFAULT_PYVER),$(PYVER)),,-$(PYVER))
VENV    := .venv$(SUFFIX)
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
TEST_DATA := data/_test$(SUFFIX)
BROWSER_DATA := data/_browser
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: install run quick test test-recipes test-solutions unit lab outputs test-browser clean python-version

$(STAMP): requirements.txt pyproject.toml
	@test -n "$(PY)" || { echo "PYTHON=$(PYTHON) was not found (neither on PATH nor in pyenv): install Python 3.11, 3.12 or 3.13, or set PYTHON=/path/to/python3.X" >&2; exit 2; }
	@"$(PY)" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else "Python 3.11, 3.12 or 3.13 is required (TensorFlow 2.21 + tfmot pins), not %d.%d; set PYTHON=/path/to/python3.X" % sys.version_info[:2])'
	@test ! -x $(BIN)/python || [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$(PYVER)" ] \
		|| { echo "$(VENV) holds another Python version than $(PY) ($(PYVER)): remove $(VENV) and run make again" >&2; exit 2; }
	test -x $(BIN)/python || "$(PY)" -m venv $(VENV)
	@test -f $(VENV)/.gitignore || echo '*' > $(VENV)/.gitignore
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# JupyterLab's settings for this workbook (no news prompt, no update check): the app settings folder of the environment.
$(LAB_SETTINGS): .jupyter/lab/settings/overrides.json $(STAMP)
	mkdir -p $(dir $@)
	cp $< $@

install: $(STAMP) $(LAB_SETTINGS)

run: install
	$(BIN)/python -m helpers.run_notebooks

quick: install
	$(BIN)/python -m helpers.quick_variants

# Notebooks run in order against an empty data folder, as on a fresh clone.
test: install
	rm -rf $(TEST_DATA)
	WORKBOOK_DATASET=digits WORKBOOK_DATA_DIR=$(abspath $(TEST_DATA)) $(BIN)/python -m pytest tests notebooks --ignore=tests/browser \
		--ignore=tests/test_recipes.py --ignore=notebooks/solutions --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider

# The recipe cells, each in a fresh process and an empty folder (run times -> <test data>/results/recipe_times.json).
# CI runs it after `make test`.
test-recipes: install
	WORKBOOK_DATASET=digits WORKBOOK_DATA_DIR=$(abspath $(TEST_DATA)) $(BIN)/python -m pytest tests/test_recipes.py -p no:cacheprovider

# The worked solutions under nbval, in the test data folder (after `make test` they reuse its variants;
# alone they rebuild what they need). CI runs it after `make test`.
test-solutions: install
	WORKBOOK_DATASET=digits WORKBOOK_DATA_DIR=$(abspath $(TEST_DATA)) $(BIN)/python -m pytest notebooks/solutions \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider

unit: install
	$(BIN)/python -m pytest tests --ignore=tests/browser -p no:cacheprovider

# As root (containers), Jupyter refuses to start without --allow-root.
lab: install
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks

# Maintainers: re-execute the notebooks, then the solutions, in place so the committed outputs are current.
outputs: install
	$(BIN)/python -m helpers.run_notebooks --inplace
	$(BIN)/python -m helpers.run_notebooks --inplace notebooks/solutions/*.ipynb

# Headless Chromium (Debian's `chromium`, or CHROMIUM=/path) drives JupyterLab through Playwright.
# Notebooks 07 and 08 run headless first, so the manifest and data/results/report.html exist.
$(VENV)/.browser-stamp: requirements-browser.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-browser.txt
	touch $@

test-browser: install $(VENV)/.browser-stamp
	rm -rf $(BROWSER_DATA)
	WORKBOOK_DATASET=digits WORKBOOK_DATA_DIR=$(abspath $(BROWSER_DATA)) $(BIN)/python -m helpers.run_notebooks \
		notebooks/07_runtime_variant_selection.ipynb notebooks/08_results_dashboard.ipynb
	WORKBOOK_DATASET=digits WORKBOOK_DATA_DIR=$(abspath $(BROWSER_DATA)) $(BIN)/python -m pytest tests/browser \
		-p no:cacheprovider -rs

# The X.Y version that PYTHON resolves to (empty when it is not found): used by .ci/run.
python-version:
	@echo $(PYVER)

clean:
	rm -rf data/models* data/results data/runs data/recipes data/play data/_test data/_test-* $(BROWSER_DATA)
