# syntax=docker/dockerfile:1
#
# Image of hawkbit-ext-authz. The build stage compiles TypeScript with the
# dev dependencies; the runtime stage holds only production dependencies,
# the compiled code and the protos it loads at run time.
#
#   docker build -t hawkbit-ext-authz:0.1.0 .
#   docker run -v "$PWD/envoy/ext-authz.yaml:/etc/hawkbit-ext-authz/config.yaml:ro" hawkbit-ext-authz:0.1.0
#
# test/deploy-docker.test.ts checks this file without building it.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: no dependency needs one to build.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
# .dockerignore keeps test/ and bench/ out, so only src/ is compiled, to dist/src/.
RUN npx tsc -p tsconfig.json

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY bin ./bin
COPY proto ./proto
# The CLI falls back to examples/config.yaml when no configuration is named.
COPY examples ./examples
COPY --from=build /app/dist/src ./dist/src

# The node user of the base image, by number, so that Kubernetes can verify
# runAsNonRoot without looking the name up.
USER 1000:1000

# 9191: gRPC ext_authz Check and grpc.health.v1; 9192: GET /healthz and /readyz.
# The ports are set by grpc.address and http.address in the configuration.
EXPOSE 9191 9192

# Slim images have no curl, so Node's fetch probes the liveness endpoint.
# This assumes http.address listens on port 9192 on 127.0.0.1 or 0.0.0.0.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9192/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["node", "dist/src/cli/main.js", "serve", "--config", "/etc/hawkbit-ext-authz/config.yaml"]
