# syntax=docker/dockerfile:1
# kfp-notify: one image for the webhook and the callback (the Deployment's args pick the command).
#   docker build -t kfp-notify:0.1.0 .
# Build and run stages use the same base, so better-sqlite3's native addon is built against the glibc
# and Node ABI it runs with. Node 24 is the current LTS line; cloudevents supports node <= 24.

FROM node:24-bookworm-slim AS build
# better-sqlite3 falls back to compiling from source when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` (tsc) cannot run before the sources are copied; the
# one dependency with an install step is built explicitly.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY cli ./cli
COPY common ./common
COPY webhook ./webhook
COPY callback ./callback
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund
# Of better-sqlite3's build only the addon runs; its C sources and objects are ~25 MB of dead weight.
RUN cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node /tmp/ \
 && rm -rf build deps src \
 && mkdir -p build/Release \
 && mv /tmp/better_sqlite3.node build/Release/ \
 && node -e "new (require('better-sqlite3'))(':memory:').close()"

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# Only what runs: no TypeScript sources, tests, dev dependencies or build tools. Files stay owned by
# root, so the runtime user cannot modify its own code.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
# Numeric, so the kubelet can check runAsNonRoot (a user name cannot be verified).
USER 65532:65532
EXPOSE 8080 8443
ENTRYPOINT ["node", "/app/bin/kfp-notify.mjs"]
CMD ["--help"]
