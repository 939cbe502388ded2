# syntax=docker/dockerfile:1
# The mp3converter image: built against Debian 12's FFmpeg, run on Debian 12 slim with only
# FFmpeg's runtime libraries. `scripts/check-chart` lints this file with hadolint and checks
# that the runtime stage's packages provide every library `ldd` says the binary needs.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
# The build packages of scripts/install-deps (FFmpeg's headers, and the clang that
# ffmpeg-sys-next's bindgen uses). Versions come with Debian 12's archive, not pinned here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libavcodec-dev libavformat-dev libavutil-dev libswresample-dev pkg-config clang libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY benches benches
COPY migrations migrations
COPY src src
# The web page and the OpenAPI document, built into the binary.
COPY web web
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mp3converter \
    && cp target/release/mp3converter /usr/local/bin/mp3converter

FROM debian:12-slim AS runtime
# FFmpeg's runtime libraries only (what the binary links: libavcodec, libavformat, libavutil,
# libswresample; the C library comes with the base image), and CA certificates for TLS to
# the backends and SMTP. Versions come with Debian 12's archive, not pinned here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libavcodec59 libavformat59 libavutil57 libswresample4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mp3c \
    && useradd --system --uid 10001 --gid mp3c --no-create-home --home-dir /data --shell /usr/sbin/nologin mp3c \
    && mkdir /data \
    && chown mp3c:mp3c /data
COPY --from=build /usr/local/bin/mp3converter /usr/local/bin/mp3converter
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /data
ENV MP3C_DATA_DIR=/data \
    MP3C_LISTEN=0.0.0.0:8080 \
    MP3C_LOG_FORMAT=json
# HTTP (API, /healthz, /readyz, /metrics) and the actor cluster.
EXPOSE 8080 4697
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/mp3converter"]
CMD ["up"]
