# The embedded S3-compatible server (services/s3-local: s3rver with loracast's listing, whole-object and
# multipart handlers), bundled, as user `node`. For the container smoke test and small setups; it has
# no real auth (key and secret are both S3RVER). Objects live in S3_LOCAL_DIR (/data, a volume).
#   podman build --format docker -f infra/s3-local.Dockerfile infra/dist
FROM node:24-bookworm-slim
WORKDIR /app
RUN mkdir -p /data && chown node:node /data
COPY app/s3-local.mjs /app/
ENV NODE_ENV=production \
    S3_LOCAL_HOST=0.0.0.0 \
    S3_LOCAL_PORT=9000 \
    S3_LOCAL_DIR=/data
VOLUME ["/data"]
USER node
EXPOSE 9000
# s3rver answers GET / (ListBuckets) once it listens.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.S3_LOCAL_PORT}/`).then((r) => process.exit(r.status < 500 ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "/app/s3-local.mjs"]
