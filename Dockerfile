# syntax=docker/dockerfile:1
#
# AegisIR as a single static binary in a distroless image: no shell, no package manager, no
# libc. The binary reads the host through /host/proc, /host/sys and /host, which the runtime
# mounts read-only (see docker-compose.yml and deploy/kubernetes/daemonset.yaml).
#
# Build: docker build -t aegisir .

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl --bin aegisir \
    && cp target/x86_64-unknown-linux-musl/release/aegisir /aegisir

# The root variant: capabilities that the runtime grants (SYS_PTRACE, DAC_READ_SEARCH) take
# effect only for uid 0, and without them most of /proc/PID/{fd,io} stays unreadable. The
# runtime drops every other capability; see docker-compose.yml.
FROM gcr.io/distroless/static-debian12
COPY --from=builder /aegisir /aegisir
ENV AEGISIR_LISTEN=0.0.0.0:5001 \
    AEGISIR_DATA_DIR=/data \
    AEGISIR_PROCFS=/host/proc \
    AEGISIR_SYSFS=/host/sys \
    AEGISIR_ROOTFS=/host
VOLUME /data
EXPOSE 5001
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/aegisir", "healthcheck"]
ENTRYPOINT ["/aegisir"]
CMD ["serve"]
