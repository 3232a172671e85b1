# syntax=docker/dockerfile:1
# melange-operator image: `docker build -t melange-operator:dev .` (test/e2e/kind.sh builds and loads it).
#
# Three stages: build (all deps, tsc) -> prod-deps (runtime deps only, no install scripts) -> runtime (no npm,
# non-root, read-only-root-filesystem friendly). test/integration/ship-image.test.ts replays the prod-deps and
# runtime steps in a clean directory without Docker; test/unit/ship/dockerfile.test.ts checks this file.
#
# Base image: Node 22 LTS on Debian 12 slim, pinned by digest. This digest is the multi-arch index of
# node:22-bookworm-slim (Node v22.23.1) as pinned in several public Dockerfiles found by a code search
# (Nov 2026); it could not be pulled from the machine this file was written on (no Docker, no registry).
# At release, re-resolve and pin it:  docker buildx imagetools inspect node:22-bookworm-slim
ARG NODE_IMAGE=node:22-bookworm-slim@sha256:53ada149d435c38b14476cb57e4a7da73c15595aba79bd6971b547ceb6d018bf

# ---- build: compile TypeScript to dist/ --------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's `prepare` script runs tsc, and the sources are not copied yet.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- prod-deps: runtime dependencies only -------------------------------------------------------------------
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no typescript, tsx, vitest. --ignore-scripts: `prepare` would call tsc, which is a dev dependency.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# ---- runtime -------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# The operator never needs npm/npx/corepack: drop them (smaller image, fewer CVEs to triage).
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn-* /usr/local/bin/yarn /usr/local/bin/yarnpkg
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and not writable by the runtime user: the app tree is read-only even without
# readOnlyRootFilesystem. The only writable path the operator may use is /tmp (an emptyDir in the chart).
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY LICENSE ./
# 65532 = the "nonroot" uid of distroless images; numeric so runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
EXPOSE 8080 8081
# No entrypoint script: node is PID 1 and gets SIGTERM itself; `melangectl controller` handles SIGTERM/SIGINT
# (stop the queue, finish reconciles, release the Lease). The same image runs `melangectl router`.
ENTRYPOINT []
CMD ["node", "bin/melangectl.js", "controller"]
