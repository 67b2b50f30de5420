#!/usr/bin/env bash
# Device call A of two (README.md, "CUDA on the GPU host"): carries only node and the linux-x64
# onnxruntime-node 1.29.0 (.carry/node.xz, .carry/ortnode.tar.xz, made by prepare.sh) and unpacks
# them to /tmp/keep, which survives while the machine stays warm (~30 s). Call B (cuda.sh), made
# right after, carries the CUDA provider and the bundles: both together exceed one call's 64 MiB.
set -euo pipefail
du -ch .carry/node.xz .carry/ortnode.tar.xz | tail -1
rm -rf /tmp/keep && mkdir -p /tmp/keep/n /tmp/keep/ort
xz -dc .carry/node.xz > /tmp/keep/n/node && chmod +x /tmp/keep/n/node
tar xJf .carry/ortnode.tar.xz -C /tmp/keep/ort
echo "staged: node $(/tmp/keep/n/node --version), onnxruntime-node $(/tmp/keep/n/node -p \
  'require("/tmp/keep/ort/node_modules/onnxruntime-node/package.json").version')"
du -sh /tmp/keep
