# The worker (`_all_docs worker start`) as a container image: Node 20 and the npm build of this
# repository, with the optional peers the worker loads. Build it from the repository root:
#
#   deno task build:npm
#   docker build -t all-docs-worker .
#
# The entry point runs `_all_docs worker start --hostname 0.0.0.0 --public --port "$PORT"`:
# Cloud Run sets PORT (8080 when it is unset). Every other setting comes from the environment
# (ALL_DOCS_WORKER_TOKEN, which a public worker requires; ALL_DOCS_QUEUE=redis://HOST:6379;
# ALL_DOCS_STORAGE=s3 with ALL_DOCS_S3_URL and AWS_*; ...) or from arguments after the image
# name, which are added to the command: `docker run IMAGE --concurrency 32`. See the README,
# "Cloud Run".

# Stage 1: the package tarball, exactly what `npm publish` would upload.
FROM node:20-slim AS pack
WORKDIR /src
COPY npm/ ./
RUN npm pack --silent --pack-destination /tmp && mv /tmp/*.tgz /tmp/all-docs.tgz

# Stage 2: the package installed with its dependencies and, at the versions it is tested with
# (deno.json's pins), the optional peers the command needs: hono and @hono/node-server (the
# worker API), @deno/kv (loaded by the CLI's storage drivers), bullmq and ioredis (the redis
# queue).
FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=pack /tmp/all-docs.tgz /tmp/all-docs.tgz
RUN echo '{"private":true}' > package.json \
  && npm install --omit=dev --ignore-scripts --no-audit --no-fund --no-package-lock \
    /tmp/all-docs.tgz \
    hono@4.13.19 @hono/node-server@2.1.9 @deno/kv@0.14.0 bullmq@6.7.0 ioredis@5.11.1 \
  && rm /tmp/all-docs.tgz \
  && npm cache clean --force
USER node
EXPOSE 8080
# A shell reads PORT when the container starts, then `exec` makes node PID 1, so SIGTERM (Cloud
# Run's stop) reaches the worker: it takes no more items and releases those in hand.
ENTRYPOINT ["/bin/sh", "-c", "exec node /app/node_modules/.bin/_all_docs worker start --hostname 0.0.0.0 --public --port \"${PORT:-8080}\" \"$@\"", "_all_docs"]
