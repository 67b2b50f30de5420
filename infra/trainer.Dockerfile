# Trainer image: the bundled trainer (no TypeScript, no npm install) on Node 24, as user `node`, with a
# read-only root filesystem in mind: it writes only TRAINER_DATA_DIR (/data, a volume: the outbox,
# subscriptions, run histories and the signing key must survive restarts) and /tmp. It also carries
# the demo model's builder (/app/build-demo-model.mjs), which the compose file and the smoke test run
# into the model volume. Build context is the bundle dir that infra/images/bundle.sh writes:
#   podman build --format docker --build-arg EXECUTION_PROVIDER=cpu -f infra/trainer.Dockerfile infra/dist
# EXECUTION_PROVIDER (cpu, webgpu, cuda) is the image's default TRAINER_EXECUTION_PROVIDER; see
# generator.Dockerfile for what cuda and webgpu install.
FROM node:24-bookworm-slim
ARG EXECUTION_PROVIDER=cpu
WORKDIR /app
COPY node_modules/ /app/node_modules/
COPY images/execution-provider.sh images/cuda-provider.env /usr/local/lib/loracast/
RUN sh /usr/local/lib/loracast/execution-provider.sh "$EXECUTION_PROVIDER" \
 && mkdir -p /data /models && chown node:node /data /models
COPY app/trainer.mjs app/build-demo-model.mjs /app/
COPY app/static/ /app/static/
# loracast's ORT addon (shared/ort-native), which `TRAINER_ORT_BACKEND=auto` runs the rollout decoder
# on under cuda; empty where bundle.sh could not build it (then the stock binding, and the log says so).
COPY native/ /app/native/
ENV NODE_ENV=production \
    TRAINER_HOST=0.0.0.0 \
    TRAINER_PORT=8700 \
    TRAINER_DATA_DIR=/data \
    TRAINER_EXECUTION_PROVIDER=$EXECUTION_PROVIDER \
    LORACAST_ORT_NATIVE_ADDON=/app/native/ort-native.node
VOLUME ["/data"]
USER node
EXPOSE 8700
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.TRAINER_PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "/app/trainer.mjs"]
