# Builds every taskwire binary into one small image; docker-compose.yml runs
# the executor, workers, triggerers and the example Go SDK runtime from it.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/executor ./cmd/worker ./cmd/triggerer ./examples/gotasks

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
USER 65534:65534
ENTRYPOINT []
