# doozerfs — build, run and test. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/doozerfs
DATA      ?= ./data
MNT       ?= ./mnt
ADDR      ?= 127.0.0.1:8046
HTTP      ?= 127.0.0.1:8080
FUZZTIME  ?= 30s
DURATION  ?= 30m
SEEDS     ?= 20000
TESTFLAGS ?=

.PHONY: help build run test bench fuzz lint soak deps clean

help:
	@echo "make build   build $(BIN)"
	@echo "make run     build, then run one replica at $(ADDR) with data in $(DATA), mounted at $(MNT), web view at http://$(HTTP)/"
	@echo "make test    the whole test suite with the race detector (what CI runs)"
	@echo "make bench   Go benchmarks of the hot paths"
	@echo "make fuzz    each fuzz target for FUZZTIME (default $(FUZZTIME))"
	@echo "make lint    gofmt -l and go vet"
	@echo "make soak    long simulator and chaos runs (DURATION, SEEDS; docs/testing.md)"

build:
	$(GO) build -o $(BIN) ./cmd/doozerfs

# deps installs the system packages the mount needs when they are missing.
deps:
	@bash .ci/deps

run: build deps
	@mkdir -p $(DATA) $(MNT)
	$(BIN) serve --addr $(ADDR) --data $(DATA) --name local --mount $(MNT) --http $(HTTP)

test:
	$(GO) test -race -count=1 -timeout 40m $(TESTFLAGS) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz:
	@bash .ci/fuzz $(FUZZTIME)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

soak:
	CONSENSUS_SEEDS=$(SEEDS) $(GO) test -count=1 -timeout 0 -run 'Simulat' ./consensus/...
	SOAK_DURATION=$(DURATION) $(GO) test -count=1 -timeout 0 -run 'TestChaosSoak' -v ./replica/chaos/

clean:
	rm -rf bin
