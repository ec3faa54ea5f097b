# mmreplicate build, test and run targets. `make help` lists them.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X github.com/mmreplicate/mmreplicate/app.Version=$(VERSION) \
           -X github.com/mmreplicate/mmreplicate/app.Commit=$(COMMIT) \
           -X github.com/mmreplicate/mmreplicate/app.BuildDate=$(BUILD_DATE)
TOOLS_BIN ?= $(HOME)/.cache/mmreplicate/bin
VERSITYGW := $(TOOLS_BIN)/versitygw
VERSITYGW_VERSION := v1.8.0
export MMR_VERSITYGW := $(VERSITYGW)

.PHONY: help build test test-unit test-integration fuzz bench lint run tools deps screenshots clean

help:
	@echo "make run               build, set up ./demo and run the daemon on the embedded defaults"
	@echo "make test              installs the test tools, then lint, unit and integration tests (builds the S3 test server once)"
	@echo "make test-unit         fast unit tests only"
	@echo "make test-integration  end-to-end tests against real NATS and S3 servers"
	@echo "make fuzz              run every fuzz target for FUZZTIME (default 10s)"
	@echo "make bench             measure loss window and ingest; see docs/BENCHMARKS.md"
	@echo "make build             bin/mmreplicate with the version stamped"
	@echo "make screenshots       PNGs of the web console's main pages into docs/screenshots"

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/mmreplicate ./cmd/mmreplicate

# The programs the integration tests drive (Debian packages; installed when run as root).
deps:
	@scripts/test-deps.sh

# The S3 server the tests run against, built once and kept in $(TOOLS_BIN).
tools: $(VERSITYGW)
$(VERSITYGW):
	@mkdir -p $(TOOLS_BIN)
	@echo "building the S3 test server (Versity S3 Gateway $(VERSITYGW_VERSION)) into $(TOOLS_BIN); takes a few minutes once"
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

# PNGs of the web console's main pages, taken by its browser test.
screenshots: deps tools build
	MMR_WEB_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestWebConsoleInBrowser$$' ./e2e/

test-integration: deps tools build
	$(GO) test -count=1 -timeout 20m ./e2e/ ./objstore/... ./internal/...

test: deps tools lint build
	$(GO) test -count=1 -timeout 25m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=5s

FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFrame$$' -fuzztime $(FUZZTIME) ./journal/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./segment/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./timespec/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeTxn$$' -fuzztime $(FUZZTIME) ./sqlitepage/
	$(GO) test -run '^$$' -fuzz '^FuzzRedact$$' -fuzztime $(FUZZTIME) ./redact/
	$(GO) test -run '^$$' -fuzz '^FuzzRedactTail$$' -fuzztime $(FUZZTIME) ./redact/
	$(GO) test -run '^$$' -fuzz '^FuzzRedactTxn$$' -fuzztime $(FUZZTIME) ./watcher/sqlite/
	$(GO) test -run '^$$' -fuzz '^FuzzToken$$' -fuzztime $(FUZZTIME) ./journal/natsbus/
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./state/
	$(GO) test -run '^$$' -fuzz '^FuzzRestore$$' -fuzztime $(FUZZTIME) ./restore/

bench: tools build
	set -o pipefail; $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./e2e/ | tee bench.out

# A demo on the embedded defaults: embedded NATS, objects in a local folder.
run: build
	@mkdir -p demo/agents/main/sessions demo/workspace
	@test -f demo/agents/main/sessions/welcome.jsonl || echo '{"role":"system","text":"demo session"}' > demo/agents/main/sessions/welcome.jsonl
	@test -f demo/mmreplicate.yml || printf 'host: demo\ndata_dir: %s/demo/.mmreplicate\nsources:\n  - name: sessions\n    path: %s/demo/agents\n  - name: workspaces\n    path: %s/demo/workspace\n' "$(CURDIR)" "$(CURDIR)" "$(CURDIR)" > demo/mmreplicate.yml
	@echo "demo: append to demo/agents/main/sessions/*.jsonl; Ctrl-C stops; then:"
	@echo "  bin/mmreplicate restore --config demo/mmreplicate.yml --at latest --to /tmp/mmr-restore"
	bin/mmreplicate run --config demo/mmreplicate.yml

clean:
	rm -rf bin demo bench.out
