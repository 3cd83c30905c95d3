# syntax=docker/dockerfile:1
# Build: cgo (DuckDB is C++), build tag duckdb_arrow.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -tags duckdb_arrow -trimpath -ldflags "-s -w" -o /out/dsbx ./cmd/dsbx

# Run: a small glibc image (DuckDB links against libstdc++), as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/dsbx --create-home dsbx
COPY --from=build /out/dsbx /usr/local/bin/dsbx
USER dsbx
WORKDIR /var/lib/dsbx
VOLUME /var/lib/dsbx
EXPOSE 8686
ENTRYPOINT ["dsbx", "serve", "--data", "/var/lib/dsbx", "--addr", "0.0.0.0:8686"]
