# Two commands for a fresh machine:
#   make demo   run the main job against the bundled sandbox (offline)
#   make test   lint, type-check, build the docs and run the whole test suite
# Both create .venv and install everything they need (uv, pinned by requirements.lock).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed
# The MySQL provider's mysqlclient compiles against libmariadb: installed when its headers are here
# (Debian: apt-get install libmariadb-dev pkg-config); without them its tests skip and say why.
EXTRAS := dev$(shell pkg-config --exists libmariadb 2>/dev/null && echo ,mysql)

# Byte-compile as a deployment does: the suite starts many Airflow processes, and recompiling
# Airflow at each start costs about 1.5 s (PYTHONDONTWRITEBYTECODE may be set by the machine).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install demo test lint typecheck docs pytest bench lock clean screenshots

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv

$(STAMP): pyproject.toml requirements.lock | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -c requirements.lock -e '.[$(EXTRAS)]'
	@echo "$(EXTRAS)" > $@

install: $(STAMP)
	@grep -qx '$(EXTRAS)' $(STAMP) || { rm -f $(STAMP); $(MAKE) --no-print-directory $(STAMP); }

demo: install
	bash scripts/demo.sh

test: install lint typecheck docs pytest

lint: install
	$(BIN)/ruff check airflow_credits_provider tests bench scripts
	$(BIN)/ruff format --check airflow_credits_provider

typecheck: install
	$(BIN)/mypy

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .venv/site

pytest: install
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/parse_cost.py
	$(BIN)/python bench/trigger_fanout.py
	$(BIN)/python bench/ui_overview.py

# Screenshots for the docs, taken from a running api-server with Debian's headless Chromium: the real
# connection form (docs/connections/img/; also saves each form and checks the saved connection works)
# and the Credits pages as the browser tests see them (docs/img/ui/).
screenshots: install
	@test -x /usr/bin/chromium || { echo "needs Debian's chromium: apt-get install chromium"; exit 1; }
	$(BIN)/python scripts/screenshots.py docs/connections/img
	CREDITS_SCREENSHOTS=$(CURDIR)/docs/img/ui $(BIN)/pytest -q -p no:cacheprovider tests/ui/test_browser.py

lock: | $(UV)
	$(UV) pip compile --quiet --python-version 3.10 --universal pyproject.toml --extra dev --extra mysql --extra smtp --extra slack \
		-o requirements.lock

clean:
	rm -rf $(VENV) .demo
