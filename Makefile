# The two commands: `make run` (set up, load the demo, start) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INGEST_HOST ?= 127.0.0.1
INGEST_PORT ?= 8765
# INGEST_PROCESSES=N (N > 1) starts N ingest processes on INGEST_BACKEND_PORT and the ports
# after it, behind HAProxy on INGEST_PORT (its statistics and metrics on BALANCER_STATS_PORT).
INGEST_PROCESSES ?= 1
INGEST_BACKEND_PORT ?= 8770
BALANCER_STATS_PORT ?= 8769
# This machine only by default; BALANCER_STATS_HOST=0.0.0.0 lets a scraper elsewhere read them.
BALANCER_STATS_HOST ?= 127.0.0.1
# How long the ingest server (or HAProxy in front of its processes) has to answer /healthz.
INGEST_START_S ?= 120
# The HTTP service: phone apps (OsmAnd protocol, OwnTracks) and the REST API (/api/v1).
HTTP_PORT ?= 8766
SIM_DEVICES ?= 3
# Simulated phones sending to the HTTP service as Traccar Client does.
SIM_PHONES ?= 1
# The simulated devices' offline buffers live beside the data.
SIM_WORKDIR ?= $(or $(TRACKER_DATA_DIR),data)/simulator
DASHBOARD_PORT ?= 8501
# This machine only by default: the README publishes the demo passwords.
# DASHBOARD_ADDRESS=0.0.0.0 make run exposes the dashboard to the network.
DASHBOARD_ADDRESS ?= 127.0.0.1
ASSETS := dashboard/static/.installed

.PHONY: setup setup-spark run test lint bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Leaflet for the maps and plotly's basic bundle for single charts, served by the app itself
# (no CDN at run time).
$(ASSETS): $(VENV)/.installed dashboard/assets.py
	$(PY) -m dashboard.assets

setup: $(VENV)/.installed $(ASSETS)

# Training on Spark (TRACKER_SPARK_MASTER; core.spark): pyspark, about 450 MB. Java 17 and the
# JDBC drivers come from Debian (.ci/run installs them: see docs/spark.md).
$(VENV)/.spark-installed: $(VENV)/.installed requirements-spark.txt
	$(PY) -m pip install --quiet -r requirements-spark.txt
	touch $@

setup-spark: setup $(VENV)/.spark-installed

# INGEST_HOST as it goes in a URL: an IPv6 address in brackets.
URL_HOST = $(if $(findstring :,$(INGEST_HOST)),[$(INGEST_HOST)],$(INGEST_HOST))
BALANCER_ARGS = --processes $(INGEST_PROCESSES) --host $(INGEST_HOST) --port $(INGEST_PORT) \
  --backend-port $(INGEST_BACKEND_PORT) --stats-port $(BALANCER_STATS_PORT) --stats-host $(BALANCER_STATS_HOST)

# Bad settings stop `make run` before anything starts; an ingest server (or balancer) that
# does not come up, or exits, stops everything started with it.
run: setup
	@case "$(INGEST_PROCESSES)" in ''|*[!0-9]*) ok=0;; *[1-9]*) ok=1;; *) ok=0;; esac; \
	  if [ $$ok = 0 ]; then \
	    echo "make run: INGEST_PROCESSES must be a whole number of at least 1, not '$(INGEST_PROCESSES)'" >&2; \
	    exit 2; fi
	$(PY) -m realtime.balancer --check $(BALANCER_ARGS)
	$(PY) -m core migrate
	$(PY) -m core demo
	@echo
	@echo "Demo logins: alice / alice-demo-pass (athlete), bob / bob-demo-pass (athlete),"
	@echo "             moderator / moderator-demo-pass (moderator)"
	@echo "alice's news feed:"
	$(PY) -m core feed --user alice --limit 10
	@echo
	@echo "Starting the dashboard on http://$(DASHBOARD_ADDRESS):$(DASHBOARD_PORT), the ingest server on"
	@echo "ws://$(URL_HOST):$(INGEST_PORT) (health: http://$(URL_HOST):$(INGEST_PORT)/healthz; $(INGEST_PROCESSES) process(es),"
	@echo "behind HAProxy when more than one), the HTTP service"
	@echo "for phone apps and the REST API on http://$(URL_HOST):$(HTTP_PORT) (docs: /api/v1/docs), the worker,"
	@echo "and $(SIM_DEVICES) simulated athletes recording live (and $(SIM_PHONES) with a phone app). Ctrl-C stops everything."
	@bash -c 'trap "trap - INT TERM EXIT; kill 0" INT TERM EXIT; \
	  stop() { echo "make run: $$1: stopping everything" >&2; trap - INT TERM EXIT; \
	    kill $$(jobs -pr) 2>/dev/null; \
	    for i in $$(seq 225); do [ -z "$$(jobs -pr)" ] && break; sleep 0.2; done; \
	    kill -9 $$(jobs -pr) 2>/dev/null; exit 1; }; \
	  $(PY) -m realtime.balancer $(BALANCER_ARGS) & \
	  ingest=$$!; \
	  $(PY) -m realtime.http --host $(INGEST_HOST) --port $(HTTP_PORT) & \
	  $(PY) -m core worker & \
	  $(VENV)/bin/streamlit run dashboard/app.py --server.port $(DASHBOARD_PORT) --server.address $(DASHBOARD_ADDRESS) & \
	  $(PY) -m realtime.health --url http://$(URL_HOST):$(INGEST_PORT)/healthz --wait $(INGEST_START_S) \
	    --pid $$ingest || stop "the ingest server did not come up on $(INGEST_HOST):$(INGEST_PORT)"; \
	  $(PY) -m realtime.simulate --server ws://$(URL_HOST):$(INGEST_PORT) --devices $(SIM_DEVICES) \
	    --phones $(SIM_PHONES) --http http://$(URL_HOST):$(HTTP_PORT) \
	    --speed 1 --rounds 1000 --workdir $(SIM_WORKDIR) & \
	  wait $$ingest; stop "the ingest server exited with status $$?"'

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

# Every bench the README lists; the PostgreSQL figures need TRACKER_BENCH_POSTGRES_URL.
bench: setup
	$(PY) bench/distance.py
	$(PY) bench/devices.py
	$(PY) bench/feed.py
	$(PY) bench/ingest_live.py
	$(PY) bench/http_ingest.py
	$(PY) bench/http_schema.py
	@if [ -n "$$TRACKER_BENCH_POSTGRES_URL" ]; then $(PY) bench/ingest_sync.py; \
	  else echo "bench/ingest_sync.py skipped: it needs TRACKER_BENCH_POSTGRES_URL"; fi
	@if [ -n "$$TRACKER_BENCH_POSTGRES_URL" ]; then $(PY) bench/ingest_commit.py; \
	  else echo "bench/ingest_commit.py skipped: it needs TRACKER_BENCH_POSTGRES_URL"; fi
	$(PY) bench/live_board.py
	$(PY) bench/ingest_backlog.py
	@if [ -n "$$TRACKER_BENCH_POSTGRES_URL" ]; then \
	  $(PY) bench/ingest_backlog.py --postgres "$$TRACKER_BENCH_POSTGRES_URL"; fi
	$(PY) bench/connections.py
	@if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then $(PY) bench/ingest_balanced.py; \
	  else echo "bench/ingest_balanced.py skipped: it needs HAProxy"; fi
	$(PY) bench/dashboard.py
	$(PY) -m bench.anomaly
	$(PY) -m bench.routes
	$(PY) -m bench.recommend
	$(PY) -m bench.challenges
	$(PY) bench/tiers.py
	@if $(PY) -c "import pyspark" 2>/dev/null && command -v java >/dev/null 2>&1; then \
	  TRACKER_SPARK_MASTER=$${TRACKER_SPARK_MASTER:-local[2]} $(PY) -m bench.spark_training; \
	  else echo "bench/spark_training.py skipped: it needs make setup-spark and Java"; fi

clean:
	rm -rf $(VENV) data
