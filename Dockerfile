# syntax=docker/dockerfile:1
# The hcgw container image: a release build in a Rust image, then only the binary on a
# minimal runtime (glibc + libssl, no shell, no package manager) as a non-root user.
#
#   docker build -t hcgw .
#   docker run --read-only -v ./config:/etc/hcgw:ro -v ./certs:/etc/hcgw/certs:ro \
#     -v hcgw-audit:/var/lib/hcgw/audit -p 8443:8443 hcgw
#
# Base images are build arguments: registry images by default; CI builds with local ones
# (scripts/image-smoke.sh makes them from Debian packages).
ARG BUILD_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/base-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
# `release` for images people run; CI passes a faster-to-build profile (Cargo.toml).
ARG CARGO_PROFILE=release
# Default features: the image keeps `hcgw simulate` and `hcgw demo` (deploy/compose runs
# its simulators from this same image). `--build-arg CARGO_FEATURE_FLAGS=--no-default-features`
# builds a gateway with no simulator code.
ARG CARGO_FEATURE_FLAGS=
# The commit for `hcgw_build_info{commit}` (the context has no .git): `--build-arg
# HCGW_COMMIT=$(git rev-parse --short=12 HEAD)`; empty means `unknown`.
ARG HCGW_COMMIT=
WORKDIR /src
COPY . .
# The crate registry and the target directory are cached between builds (BuildKit,
# Buildah/Podman); the binary is copied out of the cache before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    cargo build --locked --profile "$CARGO_PROFILE" $CARGO_FEATURE_FLAGS -p hcgw --bin hcgw; \
    case "$CARGO_PROFILE" in dev) dir=debug ;; *) dir="$CARGO_PROFILE" ;; esac; \
    mkdir -p /out/etc/hcgw/certs /out/var/lib/hcgw/audit /out/usr/share/hcgw; \
    install -m 0755 "target/$dir/hcgw" /out/hcgw; \
    cp -r config /out/usr/share/hcgw/config; \
    cp LICENSE /out/usr/share/hcgw/LICENSE

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="hcgw" \
      org.opencontainers.image.description="Federated health-code interoperability gateway" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/hcgw /usr/local/bin/hcgw
# Example configurations (config/dev.toml, config/production.example.toml, federation/).
COPY --from=build /out/usr/share/hcgw /usr/share/hcgw
# Mount points: configuration (read-only), certificates and secrets (read-only), and the
# audit trail (the only place the gateway writes), owned by the runtime user.
COPY --from=build --chown=65532:65532 /out/var/lib/hcgw /var/lib/hcgw
COPY --from=build /out/etc/hcgw /etc/hcgw
VOLUME ["/etc/hcgw", "/etc/hcgw/certs", "/var/lib/hcgw/audit"]
# distroless's `nonroot`; numeric so it works on bases without that passwd entry.
USER 65532:65532
ENV HCGW_CONFIG=/etc/hcgw/hcgw.toml \
    HCGW_AUDIT__DIR=/var/lib/hcgw/audit
# The mTLS API and the plain-HTTP admin port (set [listener] and [admin] addr to 0.0.0.0).
EXPOSE 8443 9090
# The binary probes its own admin port: no curl in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/hcgw", "healthcheck", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/hcgw"]
CMD ["serve"]
