# The workbook's commands. Each one creates .venv and installs requirements.txt when needed.
#   make run    execute every notebook headless, in order -> data/models, data/results, data/runs
#   make test   helpers' unit tests + every notebook under nbval, from a fresh data folder
#   make lab    JupyterLab on notebooks/
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TEST_DATA := data/_test

.PHONY: install run test unit lab outputs clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (TensorFlow 2.21 + tfmot pins); set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m helpers.run_notebooks

# Notebooks run in order against an empty data folder, as on a fresh clone.
test: install
	rm -rf $(TEST_DATA)
	WORKBOOK_DATASET=digits WORKBOOK_DATA_DIR=$(abspath $(TEST_DATA)) $(BIN)/python -m pytest tests notebooks \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider

unit: install
	$(BIN)/python -m pytest tests -p no:cacheprovider

lab: install
	$(BIN)/jupyter lab notebooks

# Maintainers: re-execute the notebooks in place so the committed outputs are current.
outputs: install
	$(BIN)/python -m helpers.run_notebooks --inplace

clean:
	rm -rf data/models* data/results data/runs data/_test
