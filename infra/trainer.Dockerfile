# Trainer image. Build from the repository root: docker build -f infra/trainer.Dockerfile .
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY services/trainer/package.json services/trainer/
COPY services/generator/package.json services/generator/
COPY services/s3-local/package.json services/s3-local/
COPY services/local-stack/package.json services/local-stack/
COPY test/support/package.json test/support/
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --omit=dev --workspace @loracast/trainer --include-workspace-root=false
COPY shared shared
COPY services/trainer services/trainer
USER node
EXPOSE 8700
CMD ["node", "--import", "tsx", "services/trainer/src/main.ts"]
