# syntax=docker/dockerfile:1
#
# modelgate container image.
#
#   docker build -t modelgate:dev .
#
# Three stages:
#   planner  reduces the source tree to a "skeleton": every Cargo.toml of the
#            workspace plus an empty stub for each of its targets (lib, bins,
#            benches, tests, build scripts), as `cargo metadata` lists them.
#            The skeleton only changes when a manifest or the set of targets
#            changes, so the next stage's dependency layer stays cached across
#            ordinary source edits (what cargo-chef does, without installing it).
#   builder  builds the dependencies against the skeleton (cached layer), then
#            the real sources. Only the `modelgate` package is built; other
#            workspace members (e.g. `load/`) are present as manifests/stubs
#            so the workspace resolves, and as sources, but are not compiled.
#   runtime  debian:bookworm-slim with the binary, a non-root user, and the
#            default config. No shell tools are needed for the health check:
#            `modelgate health` queries the admin listener itself.

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

########################################################################
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS planner
WORKDIR /src
COPY . .
# cargo metadata prints every manifest and every target's source file; keep
# the manifests and replace each target by a stub. `sed` keeps this free of
# jq/python in the builder image.
RUN set -eu; \
    cargo metadata --no-deps --format-version 1 --locked > /tmp/meta.json; \
    mkdir -p /skeleton; \
    cp Cargo.lock /skeleton/; \
    if [ -d .cargo ]; then cp -r .cargo /skeleton/; fi; \
    for f in rust-toolchain rust-toolchain.toml; do \
      if [ -f "$f" ]; then cp "$f" /skeleton/; fi; \
    done; \
    grep -o '"manifest_path":"[^"]*"' /tmp/meta.json | sed 's/^"manifest_path":"//; s/"$//' | sort -u > /tmp/manifests; \
    grep -o '"src_path":"[^"]*"' /tmp/meta.json | sed 's/^"src_path":"//; s/"$//' | sort -u > /tmp/targets; \
    while read -r m; do \
      rel="${m#/src/}"; mkdir -p "/skeleton/$(dirname "$rel")"; cp "$m" "/skeleton/$rel"; \
    done < /tmp/manifests; \
    while read -r t; do \
      rel="${t#/src/}"; mkdir -p "/skeleton/$(dirname "$rel")"; \
      echo 'fn main() {}' > "/skeleton/$rel"; \
    done < /tmp/targets; \
    test -f /skeleton/Cargo.toml; \
    find /skeleton -type f | sort

########################################################################
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# 1. Dependencies only: this layer is rebuilt when Cargo.toml/Cargo.lock (or
#    the set of targets) change, not when a source file does.
COPY --from=planner /skeleton/ ./
RUN cargo build --release --locked -p modelgate

# 2. The real sources. Touch them so cargo's mtime fingerprints never mistake
#    the stubs above for an up-to-date build. The context has no .git, so
#    build.rs takes the commit for modelgate_build_info from REVISION
#    (declared here, after the dependency layer, so a new commit keeps
#    that layer cached).
ARG REVISION=unknown
COPY . .
RUN set -eu; \
    find . -path ./target -prune -o -name '*.rs' -type f -exec touch {} +; \
    MODELGATE_GIT_COMMIT="$REVISION" cargo build --release --locked -p modelgate; \
    install -D -m 0755 target/release/modelgate /out/modelgate; \
    /out/modelgate --version

########################################################################
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="modelgate" \
      org.opencontainers.image.description="Model-access gateway: a transparent reverse proxy in front of Open WebUI that enforces which models each organization may use" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# ca-certificates: the platform trust roots the egress gate verifies the
# model API (OpenRouter) with.
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 modelgate; \
    useradd --system --uid 10001 --gid modelgate --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin modelgate; \
    install -d -o modelgate -g modelgate -m 0755 /app/backend/data /etc/modelgate

COPY --from=builder /out/modelgate /usr/local/bin/modelgate
COPY config/modelgate.toml /etc/modelgate/modelgate.toml

# In a container both listeners bind all interfaces: nginx reaches :8081 over
# the compose network and Prometheus scrapes :9464. Neither port needs to be
# published on the host. The database is Open WebUI's, on the shared volume.
ENV MODELGATE_CONFIG=/etc/modelgate/modelgate.toml \
    MODELGATE_DATABASE=/app/backend/data/webui.db \
    MODELGATE_LISTEN=0.0.0.0:8081 \
    MODELGATE_ADMIN_LISTEN=0.0.0.0:9464 \
    MODELGATE_UPSTREAM=http://open-webui:8080 \
    RUST_LOG=info

# /etc/modelgate: config (mount your own modelgate.toml; SIGHUP reloads it).
# /app/backend/data: Open WebUI's data volume holding webui.db. modelgate must
# be able to write it (WAL -shm file, schema at start-up), so it must run as
# the user that owns webui.db; see docs/deployment.md ("File ownership").
VOLUME ["/etc/modelgate", "/app/backend/data"]
WORKDIR /app
USER modelgate:modelgate
EXPOSE 8081 8082 9464

# `modelgate health` GETs http://$MODELGATE_ADMIN_LISTEN/health (0.0.0.0 is
# dialled as 127.0.0.1) and exits 0 or 1: no curl/wget in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/modelgate", "health"]

# modelgate handles SIGTERM itself (graceful drain, [timeouts] drain_secs).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/modelgate"]
CMD ["serve"]
