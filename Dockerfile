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
WORKDIR /app
# Everything stays owned by root: the service, running as `node`, can read its code but not change it.
COPY --from=deps /app/ ./
COPY packages/ packages/
COPY services/stepgate/ services/stepgate/
USER node
EXPOSE 50051
# main.ts reports NOT_SERVING on SIGTERM, drains calls in flight (10 s by default), then exits 0.
STOPSIGNAL SIGTERM
# grpc.health.v1 through the bundled probe: healthy only while the replica reports SERVING.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["node", "services/stepgate/src/tools/health-probe.ts"]
CMD ["node", "services/stepgate/src/main.ts"]
