# Sourced on the GPU host after setup.sh, by the scripts of a CUDA device call (cuda.sh, train.sh):
# puts the CUDA 13 provider from .carry/cuda-ep/ (prepare.sh --cuda) beside onnxruntime-node
# 1.29.0's libonnxruntime.so.1, where ORT loads providers from, and the CUDA libraries of torch's
# venv on LD_LIBRARY_PATH (../shared/docs/gpu.md). Sets cuda_ep=1 when it did, else leaves it 0.
cuda_ep=0
if [ -s .carry/cuda-ep/providers_cuda.so.xz ]; then
  ort_lib=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
  xz -dc .carry/cuda-ep/providers_cuda.so.xz > "$ort_lib/libonnxruntime_providers_cuda.so"
  cp .carry/cuda-ep/libonnxruntime_providers_shared.so "$ort_lib/"
  LD_LIBRARY_PATH=$(python3 -c "import glob,os,site;print(':'.join(sorted({p for sp in site.getsitepackages() for p in glob.glob(os.path.join(sp,'nvidia','*','lib'))})))")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LD_LIBRARY_PATH
  cuda_ep=1
fi
