# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.midtrain-installed

.PHONY: install demo test lint clean compose-config

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(VENV)/bin/midtrain demo

test: install
	$(PY) -m pytest -q

compose-config:
	docker-compose config --quiet

clean:
	rm -rf runs .pytest_cache
