# syntax=docker/dockerfile:1
# The featured image: a static binary on distroless, running as the nonroot
# user (uid 65532, the uid the Helm chart's securityContext pins).
#   docker build -t featured:dev --build-arg VERSION=$(git describe --always) .
# The build stage needs no cgo: Pebble, kafka-go, grpc and arrow-go are pure Go.

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Modules first, so a change to the sources reuses the downloaded layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/featured ./cmd/featured
# The data dir's parent, owned by nonroot: distroless has no shell to make it later.
RUN mkdir -p /out/var/lib/featured

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/featured /usr/local/bin/featured
COPY --from=build --chown=65532:65532 /out/var/lib/featured /var/lib/featured
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/featured"]
# The same addresses and data dir as the Helm chart; the chart passes its own args.
CMD ["serve", "--data-dir=/var/lib/featured/data", "--http-addr=0.0.0.0:8080", "--grpc-addr=0.0.0.0:9090"]
