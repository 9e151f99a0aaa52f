# The commands the README names. Everything runs from the two virtualenvs:
#   .venv      the app, tests and local stack (requirements-dev.txt)
#   .venv-sam  aws-sam-cli + cfn-lint (they pin their own boto3/pydantic)
#   .venv-checkov  checkov (it pins many packages of its own)
#
#   make test                      all tests (installs both venvs when needed)
#   make lint                      ruff (complexity gate: 15) + lint-imports (layers) + sam validate --lint + checkov
#   make build                     sam build (no Docker; bytecode when a Python 3.13 is found)
#   make dev                       the local stack
#   make token USER=<id> [ADMIN=1] a JWT for the local stack
#   make held                      tasks held for a redrive (local stack; OPS_ARGS="--endpoint-url ...")
#   make redrive [TASK=TASK-...]   redrive them (every held one without TASK), wait, print the outcome
#   make bench                     benchmarks
#   make dlq ARGS="--stack aigc-prod list"   inspect / replay dead-letter queues (docs/runbook.md)
#   make openapi                   regenerate docs/openapi.json from the code, and docs/api.md from it
#   make messages                  message catalogs: extract the msgids, merge them into each .po, compile the .mo
#   make screenshots               the web app's pages at phone and desktop widths -> docs/screenshots/ (Chromium)
#   make webapp STACK=aigc-prod    publish web/ to a deployed stack (its bucket's app/, config.json, CloudFront)
#   make clean

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON3     ?= python3
VENV        := .venv
VENV_SAM    := .venv-sam
PY          := $(VENV)/bin/python
SAM         := $(VENV_SAM)/bin/sam
SAM_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
VENV_CHECKOV := .venv-checkov
CHECKOV_VERSION := 3.3.30

export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY  ?= 0
export PYTHONPATH := $(CURDIR)/layers/common:$(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

VENV_STAMP     := $(VENV)/.stamp-requirements-dev
VENV_SAM_STAMP := $(VENV_SAM)/.stamp-sam-$(SAM_VERSION)-cfnlint-$(CFN_LINT_VERSION)
VENV_CHECKOV_STAMP := $(VENV_CHECKOV)/.stamp-checkov-$(CHECKOV_VERSION)

.PHONY: help venv venv-sam venv-checkov test lint build dev token held redrive bench dlq openapi messages screenshots webapp clean

help:
	@sed -n '1,/^$$/p' $(MAKEFILE_LIST) | sed 's/^# \{0,1\}//'

# ---------------------------------------------------------------- virtualenvs
venv: $(VENV_STAMP)

# Reinstalls whenever requirements-dev.txt is newer than the stamp.
$(VENV_STAMP): requirements-dev.txt
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	# The shared library on the venv's path, so `.venv/bin/lint-imports` and `.venv/bin/python` find `aigc`.
	$(PY) -c 'import sysconfig; open(sysconfig.get_path("purelib") + "/aigc-layer.pth", "w").write("$(CURDIR)/layers/common\n")'
	touch $@

venv-sam: $(VENV_SAM_STAMP)

$(VENV_SAM_STAMP):
	test -x $(VENV_SAM)/bin/python || $(PYTHON3) -m venv $(VENV_SAM)
	$(VENV_SAM)/bin/python -m pip install --disable-pip-version-check -q \
		aws-sam-cli==$(SAM_VERSION) cfn-lint==$(CFN_LINT_VERSION)
	rm -f $(VENV_SAM)/.stamp-sam-*
	touch $@

venv-checkov: $(VENV_CHECKOV_STAMP)

$(VENV_CHECKOV_STAMP):
	test -x $(VENV_CHECKOV)/bin/python || $(PYTHON3) -m venv $(VENV_CHECKOV)
	$(VENV_CHECKOV)/bin/python -m pip install --disable-pip-version-check -q checkov==$(CHECKOV_VERSION)
	rm -f $(VENV_CHECKOV)/.stamp-checkov-*
	touch $@

# ---------------------------------------------------------------- checks
# Two workers: the suite is CPU-bound and CI machines have 2 cores (about 7 minutes: docs/testing.md).
PYTEST_ARGS ?= -n 2

test: venv venv-sam
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv venv-sam venv-checkov
	$(VENV)/bin/ruff check layers functions local tests bench clients ops
	PYTHONPATH=$(CURDIR)/layers/common $(VENV)/bin/lint-imports
	$(SAM) validate --lint
	$(VENV_CHECKOV)/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download

# The layer's Makefile pip-installs manylinux aarch64 / cp313 wheels with this
# interpreter's pip, so no Python 3.13 and no Docker are needed.
build: venv-sam
	PYTHON=$(CURDIR)/$(VENV_SAM)/bin/python $(SAM) build

# ---------------------------------------------------------------- local stack
dev: venv
	$(PY) -m local $(DEV_ARGS)

# USER is also the shell's login name: only a USER given on the command line
# (make token USER=alice) counts, so a token is never minted for "root" by accident.
token: venv
	@if [ "$(origin USER)" != "command line" ]; then \
		echo "usage: make token USER=<user id> [ADMIN=1]" >&2; exit 2; fi
	@$(PY) -m local.token --user '$(USER)' $(if $(filter-out 0 false no,$(ADMIN)),--admin)

# ---------------------------------------------------------------- operations (docs/runbook.md)
held: venv
	@$(PY) -m local.ops $(OPS_ARGS) held

redrive: venv
	@$(PY) -m local.ops $(OPS_ARGS) redrive $(if $(TASK),$(TASK),--all-held) --wait

bench: venv
	$(PY) -m bench $(BENCH_ARGS)

# Against AWS: ARGS="--stack <stack> list|show Q|replay Q [--dry-run]". Against `make dev`:
# make dlq ARGS="--local list" (its dummy credentials; endpoint $AWS_ENDPOINT_URL or 127.0.0.1:8091).
dlq: venv
	$(PY) -m ops.dlq $(ARGS)

# The committed contract; tests/unit/test_contract.py fails when it drifts from the code.
openapi: venv
	$(PY) -m local.openapi docs/openapi.json
	$(PY) -m local.apidoc docs/openapi.json docs/api.md

# Translate the msgstr it lists as missing in layers/common/aigc/core/locale/*/LC_MESSAGES/aigc.po, then run it again.
messages: venv
	$(PY) -m local.messages

# A local stack of its own, some history, then Playwright over each page (the system's Chromium, as tests/browser).
screenshots: venv
	$(PY) -m local.screenshots --out docs/screenshots

webapp: venv
	@if [ -z "$(STACK)" ]; then echo "usage: make webapp STACK=<stack name> [ARGS=--dry-run]" >&2; exit 2; fi
	$(PY) -m ops.webapp --stack '$(STACK)' $(ARGS)

clean:
	rm -rf .aws-sam .pytest_cache
	find . -path ./$(VENV) -prune -o -path ./$(VENV_SAM) -prune -o \
		-name __pycache__ -type d -prune -exec rm -rf {} + 
