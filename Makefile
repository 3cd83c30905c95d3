# DataSandbox build. DuckDB is linked through cgo; the Arrow interface needs
# the duckdb_arrow build tag.
GO       ?= go
TAGS     := duckdb_arrow
GOFLAGS  := -tags=$(TAGS)

.PHONY: build test vet fmt-check bench clean guest-toolchains browser postgres screenshots fuzz

# The C guest SDK's toolchain, from Debian's packages; installed when missing
# (CI runs as root). The Go guests need only Go.
GUEST_PKGS := clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32

build:
	$(GO) build $(GOFLAGS) -o bin/dsbx ./cmd/dsbx

# Every test: unit tests of each package, the adversarial sandbox tests and
# the end-to-end tests that drive a real server over loopback, and the web
# console's tests in a real browser. Guest SDK and browser tests fail, not
# skip, when their toolchain or browser is missing.
#
# Then the packages that keep state run again with their state in
# PostgreSQL (a server on loopback that `postgres` starts), so that one
# suite covers both state databases.
test: vet fmt-check guest-toolchains browser postgres
	DSBX_REQUIRE_GUEST_TOOLCHAINS=1 DSBX_REQUIRE_BROWSER=1 $(GO) test $(GOFLAGS) -count=1 -timeout 15m ./...
	DSBX_TEST_POSTGRES='$(PG_URL)' DSBX_REQUIRE_BROWSER=1 $(GO) test $(GOFLAGS) -count=1 -timeout 15m $(STATE_PKGS)

# The packages whose tests open a state database.
STATE_PKGS := ./state/... ./operators/... ./datasets/... ./jobs/... ./audit/... ./server/... ./cmd/dsbx/... ./cmd/dsbx-bench/...

# A throwaway PostgreSQL server for the tests, from Debian's packages
# (installed when missing; CI runs as root), on loopback.
PG_PORT ?= 55432
PG_URL  := postgres://postgres@127.0.0.1:$(PG_PORT)/postgres?sslmode=disable

postgres:
	@scripts/test-postgres /tmp/dsbx-test-pg $(PG_PORT)

# Debian's Chromium and a Chinese font, for the console's end-to-end tests
# and their screenshots; installed when missing (CI runs as root).
BROWSER_PKGS := chromium fonts-wqy-microhei

browser:
	@if ! command -v chromium >/dev/null || [ ! -d /usr/share/fonts/truetype/wqy ]; then \
		echo "installing $(BROWSER_PKGS) for the console tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PKGS); \
	fi

guest-toolchains:
	@if ! command -v clang-14 >/dev/null || [ ! -f /usr/include/wasm32-wasi/stdio.h ]; then \
		echo "installing the C guest toolchain: $(GUEST_PKGS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(GUEST_PKGS); \
	fi

# The console's screenshots in docs/screenshots, for the README.
screenshots: browser
	DSBX_REQUIRE_BROWSER=1 DSBX_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test $(GOFLAGS) -count=1 -run Console ./server

vet:
	$(GO) vet $(GOFLAGS) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

bench:
	$(GO) run $(GOFLAGS) ./cmd/dsbx-bench -all

# Fuzzing: each fuzz target in turn for FUZZTIME (go runs one -fuzz pattern
# per package invocation). Their seed corpora, and any crasher kept in
# testdata/fuzz, already run as plain tests in make test. A crash stops the
# run and leaves the input in the package's testdata/fuzz/<Target>.
# FUZZMINIMIZETIME bounds the shrinking of each new interesting input: at
# go's default (60s) the slow targets (imports, audit logs) spend most of
# their time shrinking instead of fuzzing.
FUZZTIME ?= 2m
FUZZMINIMIZETIME ?= 5s
FUZZ_TARGETS := \
	./datasets:FuzzImportCSV \
	./datasets:FuzzImportParquet \
	./datasets:FuzzCSVEncoding \
	./datasets:FuzzArrowToParquet \
	./sandbox/sql:FuzzAnalyze \
	./sandbox/wasm:FuzzCheck \
	./sandbox/wasm:FuzzScan \
	./policies:FuzzAdmissionInput \
	./audit:FuzzRecover \
	./audit:FuzzVerify

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test $(GOFLAGS) -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg; \
	done

clean:
	rm -rf bin
