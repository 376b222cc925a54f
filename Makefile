# Two commands do everything: `make lab` (set up, open the course) and `make test` (set up, run every
# test this machine can run; the others skip and say what they need).
# The set-up is shared: .venv is (re)built when it is missing or when pyproject.toml changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# JupyterLab refuses to run as root (containers, CI) unless told it may.
ifeq ($(shell id -u 2>/dev/null),0)
ROOT_FLAG := --allow-root
endif

.PHONY: lab test setup notebooks site slides clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed; set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)
	@echo "Environment ready in $(VENV)."

# JupyterLab settings for this environment: no "get notified about Jupyter news?" pop-up.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_SETTINGS): | $(STAMP)
	@mkdir -p $(dir $@)
	@echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' > $@

lab: $(STAMP) $(LAB_SETTINGS)
	@echo "Starting JupyterLab; open the URL it prints below (Ctrl-C twice to stop)."
	$(PY) -m jupyter lab --ServerApp.root_dir=. --LabApp.news_url=None $(ROOT_FLAG) notebooks/00_welcome.ipynb

# Tests that need what this set-up does not install (Chromium, the hub extra, bubblewrap...) skip;
# -rfEs lists each failure, error and skip, with its reason (which names what to install; README).
test: $(STAMP)
	$(PY) -m ruff check course_lib tests benchmarks
	$(PY) -m pytest -rfEs

# Re-execute every notebook in place (after changing a notebook or the code it uses), then commit the
# outputs: the lessons, the instructor's solution notebooks, then the student notebooks released from them.
notebooks: $(STAMP)
	$(PY) -m course_lib execute notebooks exercises/solutions
	$(PY) -m course_lib release

# The course as a static website in site/ (home page, every lesson and exercise, the lesson decks in
# site/slides/), and the decks alone. Both render with no network: open site/index.html.
site: $(STAMP)
	$(PY) -m course_lib site --out site

slides: $(STAMP)
	$(PY) -m course_lib slides --out site/slides

clean-venv:
	rm -rf $(VENV)
