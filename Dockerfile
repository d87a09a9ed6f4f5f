# catalog-dns: multi-stage build on the current Node.js LTS (slim), running as the unprivileged
# "node" user. State (the SOA serial) lives in /var/lib/catalog-dns: mount a volume there so
# secondaries never see the serial go backwards after a restart.
ARG NODE_IMAGE=node:lts-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    CATALOG_DNS_DNS=0.0.0.0:8600 \
    CATALOG_DNS_DATA_DIR=/var/lib/catalog-dns
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY fixtures/demo-catalog.json ./fixtures/demo-catalog.json
RUN mkdir -p /var/lib/catalog-dns && chown node:node /var/lib/catalog-dns
USER node
VOLUME /var/lib/catalog-dns
EXPOSE 8600/udp 8600/tcp
# node runs dist/main.js directly as PID 1 (no npm, no shell in between): catalog-dns's own signal
# handling applies (SIGTERM graceful, SIGHUP reload, SIGUSR1 never opens the inspector).
ENTRYPOINT ["node", "dist/main.js"]
CMD ["--catalog-file", "fixtures/demo-catalog.json"]
