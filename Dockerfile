# catalog-dns: multi-stage build on Node.js 24 LTS (slim), running as the unprivileged "node" user.
# The base image is pinned to the exact Node version .ci/run tests on (README "Supported Node.js").
# There is no catalog by default: give --catalog-file, --consul, or --demo for the demo catalog
# (README "Docker"). State (the SOA serial) lives in /var/lib/catalog-dns: mount a volume there so
# secondaries never see the serial go backwards after a restart.
ARG NODE_IMAGE=node:24.22.3-slim

# Production dependencies only. --ignore-scripts: the package's own `prepare` (the build) needs the
# sources, which are not here yet, and no dependency needs an install script.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The build. Dependencies are installed before the sources and tsconfig.json are copied, so editing
# either reuses the install layer.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE}
ARG NODE_IMAGE
LABEL org.opencontainers.image.title="catalog-dns" \
      org.opencontainers.image.description="Authoritative DNS server for the Consul catalog, served from an in-memory snapshot" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MPL-2.0" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENV NODE_ENV=production \
    CATALOG_DNS_DNS=0.0.0.0:8600 \
    CATALOG_DNS_DATA_DIR=/var/lib/catalog-dns
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The sources the source maps in dist/ point at (node --enable-source-maps).
COPY --from=build /app/src ./src
COPY package.json LICENSE ./
COPY fixtures/demo-catalog.json ./fixtures/demo-catalog.json
RUN mkdir -p /var/lib/catalog-dns && chown node:node /var/lib/catalog-dns
USER node
VOLUME /var/lib/catalog-dns
EXPOSE 8600/udp 8600/tcp
# /healthcheck answers 200 while answers are served (also from a stale zone), 503 otherwise. It is
# asked where CATALOG_DNS_HTTP puts it (default 127.0.0.1:8601, inside the container; 0.0.0.0 or
# [::] is asked on loopback); with the endpoint moved by a flag or --config, override this check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const a = (process.env.CATALOG_DNS_HTTP || '127.0.0.1:8601').replace(/^0\\.0\\.0\\.0:/, '127.0.0.1:').replace(/^\\[::\\]:/, '[::1]:'); fetch('http://' + a + '/healthcheck', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node runs dist/main.js directly as PID 1 (no npm, no shell in between): catalog-dns's own signal
# handling applies (SIGTERM graceful, SIGHUP reload, SIGUSR1 never opens the inspector).
# Without arguments it exits 2: "--catalog-file: or --consul is required".
ENTRYPOINT ["node", "dist/main.js"]
