# GNU make. Targets: install, run, test, clean, openapi, bench, profile.
VENV ?= .venv
PYTHON ?= python3
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k transfer -x"`.
PYTEST_ARGS ?=

INSTALLED := $(VENV)/.installed

.PHONY: install run test clean openapi bench profile

install: $(INSTALLED)

$(INSTALLED): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv' failed (on Debian: apt-get install python3-venv)" >&2; exit 1; }
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements.lock
	$(VENV)/bin/pip install --no-deps -e .
	touch $@

# Dev server. LEDGER_OPERATOR_TOKEN: taken from the environment, else from
# var/operator-token, else freshly generated and saved there.
run: export LEDGER_DATABASE_URL ?= sqlite:///var/ledger.db
run: install
	@mkdir -p var
	@set -e; \
	if [ -z "$${LEDGER_OPERATOR_TOKEN:-}" ]; then \
	  if [ -s var/operator-token ]; then \
	    LEDGER_OPERATOR_TOKEN=$$(cat var/operator-token); \
	  else \
	    LEDGER_OPERATOR_TOKEN=$$($(VENV)/bin/python -c 'import secrets;print(secrets.token_urlsafe(32))'); \
	    (umask 077 && printf '%s\n' "$$LEDGER_OPERATOR_TOKEN" > var/operator-token); \
	  fi; \
	  echo "============================================================"; \
	  echo "Operator token: $$LEDGER_OPERATOR_TOKEN"; \
	  echo "(saved in var/operator-token; set LEDGER_OPERATOR_TOKEN to override)"; \
	  echo "============================================================"; \
	fi; \
	export LEDGER_OPERATOR_TOKEN; \
	echo "Database: $$LEDGER_DATABASE_URL"; \
	$(VENV)/bin/ledger db upgrade; \
	exec $(VENV)/bin/gunicorn -c gunicorn.conf.py --bind "0.0.0.0:$${PORT:-8000}" "api:create_app()"

# Runs pytest against a throwaway PostgreSQL cluster, then against SQLite.
test: install
	VENV=$(VENV) bash scripts/run-tests.sh $(PYTEST_ARGS)

clean:
	rm -rf var $(VENV)

# Regenerate the committed OpenAPI document from the marshmallow schemas.
openapi: install
	$(VENV)/bin/python -m api.openapi > openapi.yaml

# Throughput and latency against pgbench and a bare Flask app, on a throwaway PostgreSQL.
# BENCH_ARGS, e.g. "--duration 10 --soak 0" for a quick run (default: 20 s per scenario, 600 s soak).
BENCH_ARGS ?=
bench: install
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

# Where Python's time goes under load: py-spy samples the workers during one wrk scenario.
# PROFILE_ARGS, e.g. "--scenario balance_reads --duration 20" (default: the Zipf purchases, 15 s).
PROFILE_ARGS ?=
profile: install
	$(VENV)/bin/python bench/profile_load.py $(PROFILE_ARGS)
