# Stillwater: `make run` starts an all-in-one node, `make test` installs what the
# tests need (on Debian 12, as root) and runs every test.

GO       ?= go
BIN      := bin/stillwater
VAR      := $(CURDIR)/var
# Debian packages the tests use; installed by `make deps` when missing.
DEB_PKGS := chromium sip-tester kamailio baresip

.PHONY: build run test unit site deps bench lint clean

build:
	$(GO) build -o $(BIN) ./appliance/cmd/stillwater

run: build
	mkdir -p $(VAR)/etc
	$(BIN) -c $(VAR)/etc -d $(VAR) run

deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "make deps: need root to install:$$missing" >&2; exit 1; fi; \
	fi

# Unit tests run with the race detector; the end-to-end tests in
# appliance/sitetest start real stillwater processes on 127.0.0.1-3.
test: deps lint
	$(GO) test -race -timeout 20m $$($(GO) list ./... | grep -v /appliance/sitetest)
	$(GO) test -count=1 -timeout 30m ./appliance/sitetest/

# Storage figures on a three-node loopback site (writes/s and latency with 1
# and 16 shards, fsyncs, timer creates and pops, resident memory with 1 M
# pending timers); then SIP figures for Kamailio and Stillwater side by side
# (highest registration and call rates sustained with >= 99.9 % success,
# p50/p99 REGISTER->200 and INVITE->180, CPU time per registration and per
# call); then the packages' own benchmarks.
bench: build
	$(GO) run ./bench/storagebench
	$(GO) run ./bench/sipbench
	$(GO) test -run '^$$' -bench . -benchtime 2s ./consensus/wal/ ./kv/ ./timerwheel/ ./appliance/provtools/ ./diameter/homestead/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin var
