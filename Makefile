# DataSandbox build. DuckDB is linked through cgo; the Arrow interface needs
# the duckdb_arrow build tag.
GO       ?= go
TAGS     := duckdb_arrow
GOFLAGS  := -tags=$(TAGS)

.PHONY: build test vet fmt-check bench clean

build:
	$(GO) build $(GOFLAGS) -o bin/dsbx ./cmd/dsbx

# Every test: unit tests of each package, the adversarial sandbox tests and
# the end-to-end tests that drive a real server over loopback.
test: vet fmt-check
	$(GO) test $(GOFLAGS) -count=1 -timeout 15m ./...

vet:
	$(GO) vet $(GOFLAGS) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

bench:
	$(GO) test $(GOFLAGS) -run '^$$' -bench . -benchtime 2s ./...

clean:
	rm -rf bin
