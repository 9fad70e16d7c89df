# msgarchive: every target installs what it needs itself.
#   make run    start the sidecar (local-directory store under ./archive)
#   make test   lint, generated-code drift check, and the whole test suite

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf
PROTO_FILES := $(wildcard protos/msgarchive/v1/*.proto)
# pytest-xdist workers for `make test`, each with its own SeaweedFS; a file's
# tests stay on one worker (they share module fixtures).
TEST_WORKERS ?= 2

.PHONY: help run console test lint protos check-protos check-alerts tools bench clean

help:
	@echo "make run           start the sidecar on 127.0.0.1:50051, storing under ./archive"
	@echo "make console       the review console on http://127.0.0.1:8090/, over ./archive"
	@echo "make test          lint + generated-code check + unit, integration, e2e tests"
	@echo "make lint          ruff, mypy, buf lint, hadolint"
	@echo "make protos        regenerate client/msgarchive/v1 from protos/"
	@echo "make check-protos  fail if regenerating changes anything"
	@echo "make check-alerts  promtool: check the Prometheus rules and run their unit tests"
	@echo "make bench         the sidecar against direct boto3 puts, interleaved rounds (BENCH_ARGS=...);"
	@echo "                   then search, export and check-production at scale (PRODUCTIONS_ARGS=...),"
	@echo "                   what witnesses and trusted time cost (WITNESSING_ARGS=...), a span's cost,"
	@echo "                   and the floor under a unary archive (FLOOR_ARGS=...)"

# The virtualenv is rebuilt whenever pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,search,console,dev]'
	touch $@

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The TypeScript client's packages (Protobuf-ES, Connect, TypeScript), from its lock file.
TS_CLIENT := client/typescript
$(TS_CLIENT)/node_modules/.installed: $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The reference `lz4` command, which the end-to-end tests decompress copies with.
/usr/bin/lz4:
	command -v lz4 >/dev/null || { apt-get update -qq && apt-get install -y -qq lz4; }

# promtool, from Debian's prometheus package: it checks and unit-tests the alert
# rules in deploy/prometheus (the package's server is not started).
/usr/bin/promtool:
	command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

# Debian's Chromium and its driver, for the console's browser test (nothing
# downloads a browser build).
/usr/bin/chromedriver:
	command -v chromedriver >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

# Debian's Go and golang.org/x/mod: a test checks checkpoints with the Go
# checksum database's note package (code msgarchive did not write).
/usr/share/gocode/src/golang.org/x/mod/sumdb/note:
	test -d $@ || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go golang-golang-x-mod-dev; }

tools: $(BIN)/.installed $(BUF) $(TS_CLIENT)/node_modules/.installed /usr/bin/lz4 \
	/usr/bin/promtool /usr/bin/chromedriver /usr/share/gocode/src/golang.org/x/mod/sumdb/note

run: $(BIN)/.installed
	$(BIN)/msgarchive serve $(ARGS)

console: $(BIN)/.installed
	$(BIN)/msgarchive console $(ARGS)

protos: $(BIN)/.installed $(BUF) $(TS_CLIENT)/node_modules/.installed
	scripts/gen-protos client
	scripts/gen-protos-ts $(TS_CLIENT)

check-protos: $(BIN)/.installed $(BUF) $(TS_CLIENT)/node_modules/.installed
	scripts/check-protos

lint: tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BUF) lint
	$(BIN)/hadolint Dockerfile

check-alerts: /usr/bin/promtool
	promtool check rules deploy/prometheus/rules.yaml deploy/prometheus/alerts.yaml
	promtool test rules deploy/prometheus/tests.yaml

test: tools lint check-protos check-alerts
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.productions $(PRODUCTIONS_ARGS)
	$(BIN)/python -m bench.witnessing $(WITNESSING_ARGS)
	$(BIN)/python -m bench.spans
	$(BIN)/python -m bench.floor $(FLOOR_ARGS)

clean:
	rm -rf $(VENV) node_modules $(TS_CLIENT)/node_modules $(TS_CLIENT)/dist .pytest_cache .mypy_cache .ruff_cache
