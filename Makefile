# flowaudit — build, test and benchmark targets. `make help` lists them.
GO        ?= go
PKGS      ?= ./...
COMPAT    := test/compat
DEPLOY    := test/deploy
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X github.com/flowaudit/flowaudit/internal/buildinfo.Version=$(VERSION) -X github.com/flowaudit/flowaudit/internal/buildinfo.Commit=$(COMMIT)
TOOLS     := $(CURDIR)/.tools
STATICCHECK_VERSION := v0.8.2
KILLS     ?= 300
FUZZTIME  ?= 10s
CHAOS     ?= short
CHAOS_SEED ?=
CHAOS_RATE ?=
BENCHTIME ?= 1s
BENCHCOUNT ?= 6
IMAGE     ?= flowaudit:$(VERSION)

.PHONY: help build test test-unit test-compat test-chaos-ci test-deploy test-deploy-apply lint fmt-check vet staticcheck bench bench-smoke fuzz-smoke fuzz soak chaos e2e metrics-docs docker clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## Build the static binary into bin/flowaudit (the same flags as the Dockerfile)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/flowaudit ./cmd/flowaudit

test: fmt-check vet test-unit test-compat test-chaos-ci test-deploy e2e ## Everything CI runs: gofmt, vet, unit tests with -race, oracle and DuckDB tests, three chaos scenarios, manifests, the report printed by Chromium

test-unit: ## Unit tests of the main module, with the race detector
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

test-compat: ## Differential tests against Cilium v1.18.4's code and DuckDB (nested module; cgo)
	cd $(COMPAT) && CGO_ENABLED=1 $(GO) test -count=1 -timeout 20m ./...

fmt-check: ## Fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

test-deploy: ## deploy/daemonset: kustomize builds, strict Kubernetes types, config, CronJob run, PromQL (nested module)
	cd $(DEPLOY) && $(GO) test -count=1 ./...

test-deploy-apply: ## deploy/daemonset applied twice, client- and server-side, to a real kube-apiserver: nothing changes the second time (compiles kube-apiserver: ~13 CPU-minutes cold, so not in `make test`; run it when deploy/ changes)
	cd $(DEPLOY) && $(GO) vet -tags apiserver ./apply
	cd $(DEPLOY) && $(GO) test -tags apiserver -count=1 -timeout 15m ./apply

vet: ## go vet every module
	$(GO) vet $(PKGS)
	cd $(COMPAT) && $(GO) vet ./...
	cd $(DEPLOY) && $(GO) vet ./...

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(TOOLS)/staticcheck ## staticcheck (installed into .tools by this Makefile)
	$(TOOLS)/staticcheck $(PKGS)

lint: fmt-check vet staticcheck ## gofmt, go vet, staticcheck

metrics-docs: ## Regenerate docs/metrics.md from the daemon's registry
	$(GO) test -count=1 -run TestMetricsDocUpToDate ./internal/daemon -update

bench: ## All benchmarks with -benchmem, GOMAXPROCS=1, $(BENCHCOUNT) runs each (results in bench/results.txt)
	GOMAXPROCS=1 $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(PKGS) | tee bench/results.txt
	cd $(COMPAT) && GOMAXPROCS=1 $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./... | tee -a ../../bench/results.txt

bench-smoke: ## Every benchmark once (checks they still run)
	$(GO) test -run '^$$' -bench . -benchtime 1x $(PKGS)
	cd $(COMPAT) && $(GO) test -run '^$$' -bench . -benchtime 1x ./...

fuzz-smoke: ## Every fuzz target for $(FUZZTIME)
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

fuzz: fuzz-smoke ## Every fuzz target for $(FUZZTIME) (e.g. make fuzz FUZZTIME=10m; crashers land in testdata/fuzz, commit them)

test-chaos-ci: ## The chaos scenarios CI runs (about a minute and a half): the crash loop at 3,000 flows/s with retention and compaction, time, tampering
	cd $(COMPAT) && CHAOS=short CGO_ENABLED=1 $(GO) test -count=1 -timeout 15m -run '^(TestCrashLoop|TestTime|TestTampering)$$' ./chaos

chaos: ## Whole-system fault scenarios with real processes (docs/reliability.md): CHAOS=short (default) or long; CHAOS_SEED=N replays a run, CHAOS_RATE=N sets gen's flows/s
	cd $(COMPAT) && CHAOS=$(CHAOS) CHAOS_SEED=$(CHAOS_SEED) CHAOS_RATE=$(CHAOS_RATE) CGO_ENABLED=1 $(GO) test -count=1 -v -timeout 120m ./chaos

soak: ## The SIGKILL exactly-once test with $(KILLS) kills (default 300)
	FLOWAUDIT_SIGKILL_KILLS=$(KILLS) $(GO) test -count=1 -run '^TestExactlyOnceUnderSIGKILL$$' -timeout 30m -v ./pkg/archive/

e2e: build ## End-to-end: the demo's month, its report in English and Korean printed to PDF by headless Chromium and checked (out/)
	./scripts/e2e.sh

docker: ## Build the container image $(IMAGE) (needs a Docker engine)
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

clean: ## Remove build outputs
	rm -rf bin out
