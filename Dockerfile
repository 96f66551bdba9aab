# cip as a container: `cip serve` on a lake in object storage.
#
#   docker build -t cip .
#   docker run -p 8080:8080 -e CIP_LAKE=s3://bucket/lake -e AWS_REGION=… cip
#
# Build stage: the release binary with GraphiQL's assets from the npm
# registry embedded at build time; Cargo strips debug info, `strip` the
# symbols (measured: 195 MB as built, 149 MB stripped). The runtime image's
# glibc (2.36) reads the packed relocations build.rs asks the linker for.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends npm ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/vendor-assets.sh && cargo build --release --locked && strip -o /cip target/release/cip

# Runtime: distroless (glibc, CA certificates, no shell), as a non-root user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /cip /usr/local/bin/cip
USER nonroot
ENV CIP_ADDR=0.0.0.0:8080 CIP_LAKE=/data/lake
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s CMD ["/usr/local/bin/cip", "health", "--addr", "127.0.0.1:8080"]
ENTRYPOINT ["/usr/local/bin/cip", "serve"]
