#!/bin/sh
# Run inside an image build (infra/*.Dockerfile) as root, in /app: installs what execution provider
# $1 needs beside onnxruntime-node's bundled CPU libraries. cpu: nothing. webgpu: the Vulkan loader
# (libvulkan1, apt). cuda: onnxruntime-node's CUDA 12 provider libraries, which its install script
# downloads from NuGet. Where a download fails the step is skipped with a log line naming what is
# missing and the build goes on: the image then runs on cpu, and a session asked for the missing
# provider fails at start with exit 2 naming the *_EXECUTION_PROVIDER variable.
set -eu
case "$1" in
  cpu) echo "execution provider cpu: onnxruntime-node's bundled libraries only" ;;
  webgpu)
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends libvulkan1 >/dev/null; then
      rm -rf /var/lib/apt/lists/*
      echo "execution provider webgpu: Vulkan loader installed (the GPU's Vulkan driver comes from the host)"
    else
      echo "execution provider webgpu: SKIPPED, libvulkan1 could not be installed (no Debian mirror?)"
    fi ;;
  cuda)
    ort=/app/node_modules/onnxruntime-node
    if log=$(cd "$ort" && ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install.cjs 2>&1) &&
      [ -e "$ort/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so" ]; then
      echo "execution provider cuda: CUDA 12 provider installed (needs CUDA 12 + cuDNN 9 on the host)"
    else
      reason=$(printf '%s\n' "$log" | grep -m1 'Error' || printf '%s\n' "$log" | tail -1)
      echo "execution provider cuda: SKIPPED, the CUDA 12 provider could not be downloaded from NuGet ($reason);" \
        "services in this image on *_EXECUTION_PROVIDER=cuda (its default) exit 2 at start; set it to cpu to run on the CPU"
    fi ;;
  *) echo "EXECUTION_PROVIDER must be cpu, webgpu or cuda, not '$1'" >&2; exit 2 ;;
esac
