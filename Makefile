# ffl: Firefox Launcher for Slurm. `make` lists the targets.
PREFIX      ?= /usr/local
DESTDIR     ?=
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO          ?= go
BIN         := bin
LDFLAGS     := -s -w -X main.version=$(VERSION)
# cgo: os/user resolves users through NSS (LDAP/SSSD) only when built with cgo.
export CGO_ENABLED := 1
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"
CMDS        := ffl-launch ffl-epilog ffl-prolog
FUZZTIME    ?= 20s
SLURM_CONFDIR ?= /var/tmp/ffl-slurm
SLURM_MN_CONFDIR ?= /var/tmp/ffl-multinode

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/ffl-launch, bin/ffl-epilog, bin/ffl-prolog
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./cmd/...

.PHONY: deps
deps: ## install xpra, firefox-esr, chromium, slurm-wlm, munge, iproute2, jupyterhub, ... (Debian 12, root)
	./scripts/deps.sh

.PHONY: test
test: ## unit tests with the race detector (root runs the root-only cases too)
	$(GO) test -race -count=1 ./pkg/... ./internal/... ./cmd/...

.PHONY: e2e
e2e: build ## real xpra + firefox-esr + chromium end to end (root)
	FFL_E2E=1 $(GO) test -count=1 -v -timeout 20m ./tests/e2e/...

.PHONY: slurm-test
slurm-test: build ## real Slurm scenarios: sbatch, scancel, time limit, SIGKILL, Epilog (root)
	FFL_E2E=1 SLURM_CONFDIR=$(SLURM_CONFDIR) $(GO) test -count=1 -v -timeout 40m -skip '^TestMultiNode$$' ./tests/slurm/...

.PHONY: multinode-test
multinode-test: build ## real Slurm on three nodes (own namespaces, one /home): same port, srun -N2, kill -9, reboot (root)
	FFL_E2E=1 SLURM_MN_CONFDIR=$(SLURM_MN_CONFDIR) $(GO) test -count=1 -v -timeout 20m -run '^TestMultiNode$$' ./tests/slurm/...

.PHONY: jupyter-test
jupyter-test: build ## real JupyterHub + SlurmSpawner + jupyter-server-proxy + Slurm + chromium (root)
	FFL_E2E=1 SLURM_CONFDIR=$(SLURM_CONFDIR) $(GO) test -count=1 -v -timeout 30m ./tests/jupyter/...

.PHONY: preflight
preflight: build ## ffl-launch doctor: fails (exit 3) when a session could not draw on this machine
	$(BIN)/ffl-launch doctor

.PHONY: check
check: deps lint preflight test e2e slurm-test multinode-test jupyter-test ## everything CI runs: deps, lint, doctor, unit, e2e, Slurm scenarios (one node, three nodes), the Jupyter journey

.PHONY: demo
demo: deps build ## local single-node Slurm + a real session from contrib/sbatch/firefox.sbatch
	./scripts/demo.sh

.PHONY: demo-stop
demo-stop: ## cancel the demo job and stop the local Slurm
	./scripts/demo.sh stop

.PHONY: bench
bench: build ## benchmarks: grace path, epilog, sweep; prints a table
	./scripts/bench.sh

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./pkg/...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: install
install: build ## install binaries (PREFIX, DESTDIR), config example, systemd units
	install -D -m0755 $(BIN)/ffl-launch $(DESTDIR)$(PREFIX)/bin/ffl-launch
	install -D -m0755 $(BIN)/ffl-epilog $(DESTDIR)$(PREFIX)/sbin/ffl-epilog
	install -D -m0755 $(BIN)/ffl-prolog $(DESTDIR)$(PREFIX)/sbin/ffl-prolog
	install -D -m0644 etc/ffl.toml $(DESTDIR)/etc/ffl/ffl.toml.example
	install -D -m0644 etc/systemd/ffl-sweep.service $(DESTDIR)/etc/systemd/system/ffl-sweep.service
	install -D -m0644 etc/systemd/ffl-sweep.timer $(DESTDIR)/etc/systemd/system/ffl-sweep.timer
	install -D -m0644 contrib/sbatch/firefox.sbatch $(DESTDIR)$(PREFIX)/share/ffl/firefox.sbatch

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN) tests/artifacts
