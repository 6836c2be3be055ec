# ffl: Firefox Launcher for Slurm. `make` lists the targets.
PREFIX      ?= /usr/local
DESTDIR     ?=
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO          ?= go
BIN         := bin
LDFLAGS     := -s -w -X main.version=$(VERSION)
# HARDEN=1 (the Debian package): position-independent, full RELRO, bind now.
ifeq ($(HARDEN),1)
LDFLAGS     += -linkmode=external -extldflags '-Wl,-z,relro,-z,now'
BUILDMODE   := -buildmode=pie
endif
# cgo: os/user resolves users through NSS (LDAP/SSSD) only when built with cgo.
export CGO_ENABLED := 1
GOFLAGS_BUILD := -trimpath $(BUILDMODE) -ldflags "$(LDFLAGS)"
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
deps: ## install xpra, firefox-esr, chromium, slurm-wlm, munge, iproute2, python3-venv, ... (Debian 12, root)
	./scripts/deps.sh

.PHONY: test
test: ## unit tests with the race detector (root runs the root-only cases too)
	$(GO) test -race -count=1 ./pkg/... ./internal/... ./cmd/...

.PHONY: e2e
e2e: build ## real xpra + firefox-esr + chromium end to end (root)
	FFL_E2E=1 $(GO) test -count=1 -v -timeout 20m ./tests/e2e/...

.PHONY: e2e-xpra6
e2e-xpra6: build ## xpra 6.5 built from PyPI's source (scripts/xpra6.sh), then a real session on it (root)
	X=$$(scripts/xpra6.sh | tail -n1) && FFL_E2E=1 FFL_XPRA6=$$X $(GO) test -count=1 -v -run 'TestCheckHTML5Xpra6' ./pkg/prereq/ && \
	  FFL_E2E=1 FFL_XPRA6=$$X $(GO) test -count=1 -v -timeout 20m -run 'TestRealSessionXpra6' ./tests/e2e/

# The Slurm suites share one machine-wide lock. flock -o: the lock's descriptor does not reach
# the command, so a daemon a suite starts and leaves running (munged is reused by the next run)
# does not hold the lock for its whole life and block every later suite.
.PHONY: slurm-test
slurm-test: build ## real Slurm scenarios: sbatch, scancel, time limit, SIGKILL, Epilog (root)
	flock -o /run/ffl-slurm-suite.lock env FFL_E2E=1 SLURM_CONFDIR=$(SLURM_CONFDIR) $(GO) test -count=1 -v -timeout 40m -skip '^TestMultiNode$$' ./tests/slurm/...

.PHONY: multinode-test
multinode-test: build ## real Slurm on three nodes (own namespaces, one /home): same port, srun -N2, kill -9, reboot (root)
	flock -o /run/ffl-slurm-suite.lock env FFL_E2E=1 SLURM_MN_CONFDIR=$(SLURM_MN_CONFDIR) $(GO) test -count=1 -v -timeout 20m -run '^TestMultiNode$$' ./tests/slurm/...

.PHONY: slurm-versions-test
slurm-versions-test: build ## the Slurm scenarios on Slurm 24.11 (Debian trixie) and 26.05 (sid), each in a debootstrapped node image (root)
	tests/slurm/versions.sh trixie sid

# The Jupyter suite runs once per Python stack (a lock file of tests/jupyter/stacks/): today's
# stack with every test, the older one without TestCollision and TestPrestartRecent (ffl's port
# and prestart logic, the same on every stack; their stack-dependent parts, a failed start, the
# proxy and its WebSocket, are in TestFailFast and TestJourney), the door's tests (the same) and
# TestCulling (two minutes of waiting for the culler).
JUPYTER_OLD_STACK ?= jh41
JUPYTER_OLD_RUN ?= ^(TestTemplateMatchesBatchspawner|TestServerProxyConfig|TestFailFast|TestJourney)$$

.PHONY: jupyter-test
jupyter-test: build ## real JupyterHub + SlurmSpawner + JupyterLab + jupyter-server-proxy + Slurm + chromium, on two stacks from PyPI (root)
	FFL_E2E=1 FFL_JUPYTER_STACK=current SLURM_CONFDIR=$(SLURM_CONFDIR) $(GO) test -count=1 -v -timeout 30m ./tests/jupyter/...
	FFL_E2E=1 FFL_JUPYTER_STACK=$(JUPYTER_OLD_STACK) SLURM_CONFDIR=$(SLURM_CONFDIR) $(GO) test -count=1 -v -timeout 30m -run '$(JUPYTER_OLD_RUN)' ./tests/jupyter/...

.PHONY: preflight
preflight: build ## ffl-launch doctor: fails (exit 3) when a session could not draw on this machine
	$(BIN)/ffl-launch doctor

.PHONY: check
check: deps lint preflight test e2e e2e-xpra6 slurm-test multinode-test slurm-versions-test jupyter-test deb-test admin-path-test ## everything CI runs: deps, lint, doctor, unit, e2e (xpra 3.1 and 6.5), Slurm scenarios (one node, three nodes; 24.11 and 26.05 images), the Jupyter journey (two stacks), the package, and an admin's path (demo, then the package over it, non-interactive)

.PHONY: demo
demo: deps build ## local single-node Slurm + a real session from contrib/sbatch/firefox.sbatch
	./scripts/demo.sh

.PHONY: demo-stop
demo-stop: ## cancel the demo job, stop the local Slurm, remove what the demo installed
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

.PHONY: docs
docs: ## regenerate the man pages, bash completion and etc/ffl.toml from the CLI and pkg/config
	FFL_UPDATE_DOCS=1 $(GO) test -count=1 -run 'TestGeneratedDocs|TestConfigManPage|TestExampleIsGenerated' ./cmd/... ./internal/clidoc ./pkg/config

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: install
install: build install-files ## install binaries, man pages, completion, units, contrib (PREFIX, DESTDIR)

# What the Debian package installs too (debian/rules: PREFIX=/usr, the systemd units in
# /lib/systemd/system, the conffile as /etc/ffl/ffl.toml). A source install keeps an existing
# /etc/ffl/ffl.toml: its example goes beside it.
UNITDIR  ?= /etc/systemd/system
CONFFILE ?= /etc/ffl/ffl.toml.example
SHAREDIR  = $(PREFIX)/share
.PHONY: install-files
install-files:
	install -D -m0755 $(BIN)/ffl-launch $(DESTDIR)$(PREFIX)/bin/ffl-launch
	install -D -m0755 $(BIN)/ffl-epilog $(DESTDIR)$(PREFIX)/sbin/ffl-epilog
	install -D -m0755 $(BIN)/ffl-prolog $(DESTDIR)$(PREFIX)/sbin/ffl-prolog
	install -D -m0644 etc/ffl.toml $(DESTDIR)$(CONFFILE)
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/sbin/|$(PREFIX)/sbin/|g' etc/systemd/ffl-sweep.service >$(DESTDIR)$(UNITDIR)/ffl-sweep.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/ffl-sweep.service
	install -m0644 etc/systemd/ffl-sweep.timer $(DESTDIR)$(UNITDIR)/ffl-sweep.timer
	install -d $(DESTDIR)$(SHAREDIR)/ffl
	install -m0644 contrib/sbatch/* etc/slurm/slurm.conf.snippet $(DESTDIR)$(SHAREDIR)/ffl/
	chmod 0755 $(DESTDIR)$(SHAREDIR)/ffl/firefox.sbatch $(DESTDIR)$(SHAREDIR)/ffl/slurmspawner.sh.j2
	install -D -m0644 docs/man/ffl-launch.1 $(DESTDIR)$(SHAREDIR)/man/man1/ffl-launch.1
	install -D -m0644 docs/man/ffl.toml.5 $(DESTDIR)$(SHAREDIR)/man/man5/ffl.toml.5
	install -D -m0644 docs/man/ffl-epilog.8 $(DESTDIR)$(SHAREDIR)/man/man8/ffl-epilog.8
	install -D -m0644 docs/man/ffl-prolog.8 $(DESTDIR)$(SHAREDIR)/man/man8/ffl-prolog.8
	install -d $(DESTDIR)$(SHAREDIR)/bash-completion/completions
	install -m0644 contrib/bash-completion/ffl-launch contrib/bash-completion/ffl-epilog \
	  contrib/bash-completion/ffl-prolog $(DESTDIR)$(SHAREDIR)/bash-completion/completions/

.PHONY: deb
deb: ## build ffl_<version>_amd64.deb with debhelper and check it with lintian (Debian 12)
	./scripts/deb.sh build

.PHONY: admin-path-test
admin-path-test: deb ## make demo, the package over it (non-interactive), demo-stop, purge: nothing left; in a private copy of this machine (root)
	./tests/deb/admin-path.sh ffl_*_amd64.deb

.PHONY: deb-test
deb-test: deb ## install the .deb, run a real Slurm job against it, purge it, show nothing is left (root)
	flock -o /run/ffl-slurm-suite.lock ./tests/deb/deb-test.sh ffl_*_amd64.deb

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN) tests/artifacts build ffl_*.deb
