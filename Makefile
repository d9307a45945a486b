# The two commands: `make run` (set up, load the demo, start) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m core migrate
	$(PY) -m core demo
	@echo
	@echo "Demo logins: alice / alice-demo-pass (athlete), bob / bob-demo-pass (athlete),"
	@echo "             moderator / moderator-demo-pass (moderator)"
	@echo "alice's news feed:"
	$(PY) -m core feed --user alice --limit 10

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/distance.py
	$(PY) bench/devices.py
	$(PY) bench/feed.py

clean:
	rm -rf $(VENV) data
