# Stepgate: one image for the replicas (`node services/stepgate/src/main.ts`, the default command)
# and for the one-shot migration (`node services/stepgate/src/migrate.ts`). Node.js 24 runs the
# TypeScript sources directly (type stripping), so there is no build step: the image holds the
# production dependencies and the sources. docker-compose.yml shows how it is configured.

# Only the workspace manifests, so that the install layer below is rebuilt only when they change.
FROM node:24-slim AS manifests
WORKDIR /src
COPY . .
RUN mkdir /manifests \
 && cp --parents pnpm-lock.yaml pnpm-workspace.yaml /manifests/ \
 && find . -name package.json -not -path "*/node_modules/*" -exec cp --parents {} /manifests/ \;

# Production dependencies (no buf, Biome, TypeScript), exactly as the lockfile pins them.
FROM node:24-slim AS deps
# pnpm is pinned through engines.pnpm in package.json; keep the two equal.
RUN npm install --global pnpm@12.21.0
WORKDIR /app
COPY --from=manifests /manifests/ ./
# No BuildKit-only features (such as a cache mount for the store), so the classic builder of older
# engines, which docker-compose v1 may drive, builds it too. This stage's store is not shipped.
RUN pnpm install --frozen-lockfile --prod

FROM node:24-slim
ENV NODE_ENV=production
# Node's compile cache, filled below at build: a replica started from it loads no TypeScript
# stripper (about 17 MiB of RSS per replica) and starts in a second instead of several.
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache
# At most two glibc malloc arenas instead of one per allocating thread (8 per core), each keeping
# what was freed in it: about 15 MiB less RSS under load. Keep equal to replicaRuntimeEnv
# (packages/testkit/src/replica-process.ts).
ENV MALLOC_ARENA_MAX=2
WORKDIR /app
# Everything stays owned by root: the service, running as `node`, can read its code but not change it.
COPY --from=deps /app/ ./
COPY packages/ packages/
COPY services/stepgate/ services/stepgate/
# tools/warm-compile-cache.ts loads every module a replica runs and writes the cache on exit. With
# the CMD's V8 flags: the cache is kept per set of flags. Read-only at run time (owned by root).
RUN node --max-semi-space-size=4 --heap-growing-percent=50 services/stepgate/src/tools/warm-compile-cache.ts && \
    test -n "$(ls -A /app/.node-compile-cache)"
USER node
EXPOSE 50051
# main.ts reports NOT_SERVING on SIGTERM, drains calls in flight (10 s by default), then exits 0.
STOPSIGNAL SIGTERM
# grpc.health.v1 through the bundled probe: healthy only while the replica reports SERVING.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["node", "services/stepgate/src/tools/health-probe.ts"]
# V8 heap flags (docs/performance.md, "Memory"): a 4 MiB semi-space instead of one that grows to 32 MiB or more
# under load, and a major GC once the old space is 1.5x its live size instead of up to 4x. They
# keep RSS under 200 MiB under load; they cost some CPU per call. Keep them equal to
# replicaNodeFlags (packages/testkit/src/replica-process.ts), which tests and the bench use.
CMD ["node", "--max-semi-space-size=4", "--heap-growing-percent=50", "services/stepgate/src/main.ts"]
