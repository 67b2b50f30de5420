#!/bin/sh
# Run inside an image build (infra/*.Dockerfile) as root, in /app: installs what execution provider
# $1 needs beside onnxruntime-node's bundled CPU libraries. cpu: nothing. webgpu: the Vulkan loader
# (libvulkan1, apt). cuda: ORT 1.29.0's CUDA 13 provider from the npm registry (npm pack, integrity
# checked) and the CUDA 13 libraries it links, from NVIDIA's Debian 12 repository (apt). Where a
# download fails the step is skipped with a log line naming what is missing and the build goes on:
# the image then runs on cpu, and a session asked for the missing provider fails at start with exit
# 2 naming the *_EXECUTION_PROVIDER variable.
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
    # ORT 1.29.0's CUDA 13 provider, integrity pinned; it must match libonnxruntime.so.1's version.
    . "$(dirname "$0")/cuda-provider.env"
    pkg=$CUDA_PROVIDER_PKG integrity=$CUDA_PROVIDER_INTEGRITY
    lib=/app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64
    tmp=$(mktemp -d)
    if got=$(cd "$tmp" && npm pack "$pkg" --cache "$tmp/npm-cache" --json --silent 2>/dev/null |
      node -p 'JSON.parse(require("fs").readFileSync(0))[0].integrity' 2>/dev/null) && [ "$got" = "$integrity" ] &&
      tar xzf "$tmp"/*.tgz -C "$tmp" && cp "$tmp/package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so" \
        "$tmp/package/Plugins/Linux/x64/libonnxruntime_providers_shared.so" "$lib/"; then
      echo "execution provider cuda: ORT 1.29.0 CUDA 13 provider installed from $pkg"
      # A provider loads only into the core library of its exact version: this image's onnxruntime-node
      # becomes 1.29.0 (the project installs 1.30, whose CPU kernels keep batched = alone for sampled
      # streams; 1.29's do not, so only the CUDA image runs 1.29). loracast's ORT addon
      # (/app/native/ort-native.node, bundle.sh), the decoders' binding on cuda, is linked against no
      # libonnxruntime: it opens this one at run time, so it runs on 1.29.0 here unchanged.
      if (cd "$tmp" && npm pack onnxruntime-node@1.29.0 --cache "$tmp/npm-cache" --silent >/dev/null 2>&1) &&
        rm -rf "$tmp/ort" && mkdir -p "$tmp/ort" && tar xzf "$tmp"/onnxruntime-node-1.29.0.tgz -C "$tmp/ort" --strip-components=1 &&
        cp -r "$tmp/ort/dist" "$tmp/ort/package.json" /app/node_modules/onnxruntime-node/ &&
        cp "$tmp/ort/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$tmp/ort/bin/napi-v6/linux/x64/onnxruntime_binding.node" "$lib/"; then
        echo "execution provider cuda: onnxruntime-node 1.29.0 installed to match the provider"
      else
        echo "execution provider cuda: SKIPPED, onnxruntime-node 1.29.0 could not be fetched: the provider will not load"
      fi
    else
      echo "execution provider cuda: SKIPPED, $pkg could not be fetched from the npm registry or its integrity differs;" \
        "services in this image on *_EXECUTION_PROVIDER=cuda (its default) exit 2 at start; set it to cpu to run on the CPU"
    fi
    rm -rf "$tmp"
    # What the provider links (readelf -d): libcudart.so.13, libcublas.so.13, libcublasLt.so.13,
    # libcurand.so.10, and libcuda.so.1, which the NVIDIA container runtime mounts from the host's
    # driver (580 or newer for CUDA 13). cuDNN and NVRTC are opened only by kernels our graphs do not
    # use. The four come from NVIDIA's CUDA repository for Debian 12.
    repo=https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null &&
      node -e 'fetch(process.argv[1]).then(async (r) => { if (!r.ok) throw new Error(String(r.status));
        require("fs").writeFileSync("/tmp/cuda-keyring.deb", Buffer.from(await r.arrayBuffer())) })' \
        "$repo/cuda-keyring_1.1-1_all.deb" && dpkg -i /tmp/cuda-keyring.deb >/dev/null && apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends cuda-cudart-13-0 libcublas-13-0 libcurand-13-0 >/dev/null; then
      echo /usr/local/cuda-13.0/targets/x86_64-linux/lib > /etc/ld.so.conf.d/loracast-cuda-13.conf && ldconfig
      rm -rf /var/lib/apt/lists/* /tmp/cuda-keyring.deb
      echo "execution provider cuda: CUDA 13 runtime, cuBLAS and cuRAND installed from $repo"
    else
      echo "execution provider cuda: SKIPPED, the CUDA 13 libraries could not be installed from $repo;" \
        "a session on cuda then fails to load the provider and the service exits 2 naming *_EXECUTION_PROVIDER"
    fi ;;
  *) echo "EXECUTION_PROVIDER must be cpu, webgpu or cuda, not '$1'" >&2; exit 2 ;;
esac
