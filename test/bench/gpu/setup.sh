# Sourced by the GPU scripts on the GPU host: the Vulkan loader and glvnd from .gl/, node and the
# linux-x64 onnxruntime-node from .carry/ (made by prepare.sh), and the output folder.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
mkdir -p /tmp/n && xz -dc .carry/node.xz > /tmp/n/node && chmod +x /tmp/n/node && export PATH=/tmp/n:$PATH
tar xJf .carry/ortnode.tar.xz
work=/tmp/bench-work; mkdir -p "$work" "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
