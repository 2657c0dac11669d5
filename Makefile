# The one entry point for humans and CI. `make up` runs the appliance, `make test` proves it.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE_IMAGE ?= debian:trixie-slim
IMAGE ?= appliance:latest
COMPOSE := docker compose
E2E := $(COMPOSE) -p appliance-e2e -f compose.yaml -f tests/e2e/compose.e2e.yaml

.PHONY: help up down image test unit e2e bench logs shell console status backup restore lint \
	engine base test-deps problems \
	wheels venv clean docs advisories

help:
	@echo "make up       build the image and start the appliance (docker compose up)"
	@echo "make down     stop it (the data volume stays)"
	@echo "make test     lint (ruff, import contracts, mypy), unit tests, then end-to-end tests"
	@echo "make unit     unit tests only (seconds, no container)"
	@echo "make e2e      end-to-end tests only"
	@echo "make bench    SMTP throughput: our pipeline vs Postfix alone"
	@echo "make logs     follow the appliance's logs"
	@echo "make shell    a shell inside the appliance"
	@echo "make console  the console menu (networking, DNS, MTU, delivery, status)"
	@echo "make status   services, queue, disk, certificate"
	@echo "make backup   the data volume to backups/backup-DATE.tar.gz (mode 0600)"
	@echo "make restore FILE=backup.tar.gz   replace the data volume from a backup"

$(BIN)/.installed: pyproject.toml
	PY=$(PY) bash tools/python-venv.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/pip install -q -e '.[test,console]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c 'import aiosmtpd, testinfra, textual, hypothesis, importlinter, mypy'
	touch $@

venv: $(BIN)/.installed

engine:
	bash tools/docker-engine.sh

base: engine
	bash tools/base-image.sh $(BASE_IMAGE)

wheels: venv
	PY=$(BIN)/python bash tools/wheels.sh

image: base wheels
	DOCKER_BUILDKIT=0 docker build -q -f Containerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) . >/dev/null
	@docker image inspect -f 'image $(IMAGE): {{.Size}} bytes' $(IMAGE)

up: image
	$(COMPOSE) down --remove-orphans
	$(COMPOSE) up -d --wait
	@echo "The appliance is up. Logs: make logs. Add a user: docker compose exec appliance appliance user add NAME"
	@$(MAKE) -s problems

# Healthy means SMTP and IMAP answer; what else `appliance status` finds wrong (say, no
# virus signatures yet, so all mail is deferred) is said after `make up`, never failing it.
problems:
	@if ! out=$$($(COMPOSE) exec -T appliance appliance status 2>&1); then \
	  echo "But appliance status reports problems (make status shows them again):"; \
	  printf '%s\n' "$$out" | grep '^problems: ' | sed 's/^problems: /  /' \
	    || printf '%s\n' "$$out"; \
	fi

down: engine
	$(COMPOSE) down --remove-orphans

logs: engine
	$(COMPOSE) logs -f

shell: engine
	$(COMPOSE) exec appliance bash -l

console: engine
	$(COMPOSE) exec -it appliance console

status: engine
	$(COMPOSE) exec -T appliance appliance status

# The archive holds every key, password hash and mailbox: mode 0600 (umask) in backups/,
# which git ignores
backup: engine
	umask 077 && mkdir -p backups && f=backups/backup-$$(date +%Y%m%d-%H%M%S).tar.gz && \
	$(COMPOSE) exec -T appliance appliance backup > $$f.part && mv $$f.part $$f && \
	echo "wrote $$f (keys, password hashes and all mail: keep it private)"

restore: engine
	@test -n "$(FILE)" || { echo "usage: make restore FILE=backup.tar.gz"; exit 2; }
	$(COMPOSE) exec -T appliance appliance restore < "$(FILE)"

unit: venv
	$(BIN)/pytest -q tests/unit tests/smtpd

# the host's test tools (testssl, a DKIM verifier, tmux, chromium): tools/test-deps.sh
test-deps:
	bash tools/test-deps.sh

e2e: test-deps image
	$(BIN)/pytest -q tests/e2e

test: lint unit e2e

docs: venv
	$(BIN)/python -m appliance.commands.docs

# the image's Python packages against PyPI's advisory data (needs PyPI over HTTPS)
advisories: wheels
	$(BIN)/python tools/advisories.py

bench: image
	$(BIN)/python tools/bench.py

# ruff, the layer contracts (import-linter) and the types (mypy), all set in pyproject.toml
lint: venv
	$(BIN)/ruff check appliance console tests tools
	$(BIN)/lint-imports
	$(BIN)/mypy appliance console

clean:
	-$(E2E) down -v --remove-orphans
	rm -rf build
