# Sourced by the GPU scripts on the GPU host: the Vulkan loader and glvnd from .gl/, node and the
# linux-x64 onnxruntime-node from .carry/ (made by prepare.sh) or, when this call did not carry them,
# from /tmp/keep (left by cuda-stage.sh in the call just before), and the output folder.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -s .carry/node.xz ]; then
  mkdir -p /tmp/n && xz -dc .carry/node.xz > /tmp/n/node && chmod +x /tmp/n/node && export PATH=/tmp/n:$PATH
  tar xJf .carry/ortnode.tar.xz
elif [ -x /tmp/keep/n/node ] && [ -d /tmp/keep/ort/node_modules ]; then
  export PATH=/tmp/keep/n:$PATH
  mkdir -p node_modules && cp -r /tmp/keep/ort/node_modules/. node_modules/
else
  echo "no node here: carry .carry/node.xz and .carry/ortnode.tar.xz, or run cuda-stage.sh in the call just before" >&2
  exit 3
fi
work=/tmp/bench-work; mkdir -p "$work" "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
