# Generator image for GPU nodes. Unlike dev and CI installs, this one runs onnxruntime-node's
# postinstall with the CUDA 12 provider (downloaded from NuGet at build time; needs CUDA 12 + cuDNN 9
# on the node). Build from the repository root: docker build -f infra/generator.Dockerfile .
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY services/trainer/package.json services/trainer/
COPY services/generator/package.json services/generator/
COPY services/s3-local/package.json services/s3-local/
COPY services/local-stack/package.json services/local-stack/
COPY test/support/package.json test/support/
RUN npm ci --omit=dev --workspace @loracast/generator --include-workspace-root=false \
 && cd node_modules/onnxruntime-node && ONNXRUNTIME_NODE_INSTALL=cuda12 node ./script/install
COPY shared shared
COPY services/generator services/generator
COPY infra/demo-base infra/demo-base
USER node
EXPOSE 8800
ENV MALLOC_MMAP_THRESHOLD_=131072
CMD ["node", "--expose-gc", "--import", "tsx", "services/generator/src/main.ts"]
