#!/usr/bin/env bash
# build.sh [--provider cpu|webgpu|cuda]: builds the three images with podman, tagged
# localhost/loracast-{s3-local,trainer,generator}:$LORACAST_IMAGE_TAG (default dev; the generator and
# trainer of a non-cpu provider get the tag dev-<provider>): the base image first where it is missing
# (base.sh), then the bundles (bundle.sh), then each Dockerfile with infra/dist as the context.
# `--format docker` keeps the HEALTHCHECK (the OCI format has none). Run after `npm ci`, as root.
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
provider=cpu
if [ "${1:-}" = "--provider" ]; then provider=${2:?--provider needs cpu, webgpu or cuda}; fi
suffix=$([ "$provider" = cpu ] && echo "" || echo "-$provider")
./base.sh
./bundle.sh
cd ../..
build() { # name, then build arguments
  local name=$1 start=$SECONDS
  shift
  local log=$LORACAST_CACHE_DIR/build-${name##*/}.log
  pod build --isolation chroot --network host --format docker -t "$name" "$@" infra/dist >"$log" 2>&1 ||
    { tail -30 "$log"; echo "image $name: build failed (log: $log)"; exit 1; }
  # The execution provider step's own line (cached layers print none).
  grep '^execution provider' "$log" | sed "s|^|image ${name##*/}: |" || true
  echo "image $name: built in $((SECONDS - start)) s"
}
build "localhost/loracast-s3-local:$IMAGE_TAG" -f infra/s3-local.Dockerfile
build "localhost/loracast-trainer:$IMAGE_TAG$suffix" -f infra/trainer.Dockerfile --build-arg "EXECUTION_PROVIDER=$provider"
build "localhost/loracast-generator:$IMAGE_TAG$suffix" -f infra/generator.Dockerfile --build-arg "EXECUTION_PROVIDER=$provider"
