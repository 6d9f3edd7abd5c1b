# syntax=docker/dockerfile:1
# Multi-stage build of the static flowaudit binary (CGO_ENABLED=0, the same
# flags as `make build`), on a distroless static base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/flowaudit/flowaudit/internal/buildinfo.Version=${VERSION} -X github.com/flowaudit/flowaudit/internal/buildinfo.Commit=${COMMIT}" \
      -o /out/flowaudit ./cmd/flowaudit

# The image runs as the distroless "nonroot" user (65532). Cilium's exporter
# (github.com/cilium/lumberjack/v2) creates events.log and its backups with mode
# 0644, so a non-root reader can follow them. The DaemonSet overrides the user
# to root only because the archive hostPath (/var/lib/flowaudit, created by the
# kubelet as root 0755) needs it (the agent socket, root-owned too, will when
# the gRPC sources arrive); it drops every capability and mounts the Hubble
# directory read-only (deploy/daemonset/README.md).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flowaudit /usr/local/bin/flowaudit
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/flowaudit"]
CMD ["run", "--config", "/etc/flowaudit/config.yaml"]
