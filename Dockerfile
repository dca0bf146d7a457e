# syntax=docker/dockerfile:1
# scrapecache container image.
#   docker build -t scrapecache .
#   docker run --init -p 9180:9180 -v "$PWD/proxy.yaml:/etc/scrapecache/proxy.yaml:ro" -v scrapecache-data:/var/lib/scrapecache scrapecache
# The build steps live in scripts/build-image-tree.sh, which CI also runs in a clean copy
# (scripts/ci-image-tree.sh) and checks with scripts/check-image-tree.sh.
ARG NODE_IMAGE=node:24.19.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
# The git revision for scrapecache_build_info: the build context has no .git, so pass it:
#   docker build --build-arg SCRAPECACHE_REVISION=$(git rev-parse HEAD) -t scrapecache .
ARG SCRAPECACHE_REVISION=unknown
WORKDIR /build
COPY package.json package-lock.json tsconfig.json ./
COPY src/ src/
COPY scripts/build-image-tree.sh scripts/healthcheck.mjs scripts/write-build-info.mjs scripts/
RUN --mount=type=cache,target=/root/.npm bash scripts/build-image-tree.sh /out

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and not writable by the user the proxy runs as.
COPY --from=build /out/ /app/
# The default config: routes to the compose services, listeners on 0.0.0.0 (ports from
# SCRAPECACHE_LISTEN / SCRAPECACHE_ADMIN_LISTEN). Mount your own file over this path.
COPY deploy/proxy.docker.yaml /etc/scrapecache/proxy.yaml
# The disk level (cache.disk.path): owned by the proxy's user, a volume so that entries outlive
# the container (a named volume starts with this directory's owner).
RUN mkdir -p /var/lib/scrapecache && chown node:node /var/lib/scrapecache
VOLUME /var/lib/scrapecache
# uid 1000 from the node base image.
USER node
# 9180: scrape listener; 9181: admin listener (/-/healthy, /-/ready, /metrics, /invalidate).
EXPOSE 9180 9181
# The admin listener answers /-/healthy on 127.0.0.1:9181 unless the config moves it; then set
# SCRAPECACHE_HEALTHCHECK_URL.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/healthcheck.mjs"]
# SIGTERM drains and exits 0 (SPEC 6); run with --init (compose: init: true) for PID 1 duties.
ENTRYPOINT ["node", "--max-semi-space-size=4", "/app/dist/src/cli.js", "--config.file", "/etc/scrapecache/proxy.yaml"]
