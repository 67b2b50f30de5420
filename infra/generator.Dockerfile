# Generator image: the bundled generator (no TypeScript, no npm install) on Node 24, as user `node`,
# with a read-only root filesystem in mind (it writes nothing outside /tmp). Build context is the
# bundle dir that infra/images/bundle.sh writes; infra/images/build.sh runs both:
#   podman build --format docker --build-arg EXECUTION_PROVIDER=cpu -f infra/generator.Dockerfile infra/dist
# EXECUTION_PROVIDER (cpu, webgpu, cuda) is also the image's default GENERATOR_EXECUTION_PROVIDER.
# cuda installs ORT 1.29.0's CUDA 13 provider (npm registry) and the CUDA 13 libraries it links
# (NVIDIA's Debian 12 repository; the node needs a driver for CUDA 13); where a download fails the step
# is skipped with a log line, and a generator started on cuda then exits 2 naming
# GENERATOR_EXECUTION_PROVIDER. webgpu adds the Vulkan loader (apt), likewise skipped where the Debian
# mirror is unreachable.
FROM node:24-bookworm-slim
ARG EXECUTION_PROVIDER=cpu
WORKDIR /app
COPY node_modules/ /app/node_modules/
COPY images/execution-provider.sh images/cuda-provider.env /usr/local/lib/loracast/
RUN sh /usr/local/lib/loracast/execution-provider.sh "$EXECUTION_PROVIDER" \
 && mkdir -p /models && chown node:node /models
COPY app/generator.mjs /app/
# loracast's ORT addon (shared/ort-native), which `GENERATOR_ORT_BACKEND=auto` runs the decoder on
# under cuda; empty where bundle.sh could not build it (then the stock binding, and the log says so).
COPY native/ /app/native/
ENV NODE_ENV=production \
    MALLOC_MMAP_THRESHOLD_=131072 \
    GENERATOR_HOST=0.0.0.0 \
    GENERATOR_PORT=8800 \
    GENERATOR_EXECUTION_PROVIDER=$EXECUTION_PROVIDER \
    LORACAST_ORT_NATIVE_ADDON=/app/native/ort-native.node
USER node
EXPOSE 8800
# No curl in the image: node asks /healthz on the port the generator listens on.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.GENERATOR_PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains: in-flight requests finish, then the process exits 0 (shared/platform/shutdown.ts).
STOPSIGNAL SIGTERM
CMD ["node", "--expose-gc", "/app/generator.mjs"]
