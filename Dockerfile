# deploybench on NVIDIA's PyTorch container, which brings CUDA, cuDNN, PyTorch and TensorRT
# (with its Python bindings); deploybench adds ONNX Runtime for CUDA, OpenVINO, Ultralytics and
# NVML on top, at the versions in docker/constraints.txt. The tag is pinned: a new tag changes
# library versions, and the regression gate refuses results across such a change unless told
# --force, so bump it (and the constraints) on purpose. The digest pins the exact image behind the tag
# (25.01: CUDA 12.8, PyTorch 2.6.0a0+ecf3bae40a); `python scripts/docker_build.py` (CI's docker job)
# builds it and records the digest it pulled and the image's `pip freeze`.
#   docker build -t deploybench .
#   docker run --rm --gpus all --ipc=host --pid=host deploybench compare --models resnet50 --target auto
# (--pid=host: NVML lists host PIDs, so each worker finds its own GPU memory; without it rows
# report every GPU's and say so.)
FROM nvcr.io/nvidia/pytorch:25.01-py3@sha256:96990c82825613c3bdeebb66675c7c91b0123f64a5895623316dc5b824e0d7a9

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/deploybench

# Dependencies first, from setup.cfg alone, so that editing the source reuses this layer: those of
# deploybench and of its gpu, onnx, openvino and yolo extras, less the CPU build of ONNX Runtime
# (onnxruntime-gpu from the gpu extra installs the same module). The container's own torch and
# torchvision satisfy deploybench's requirements, so pip keeps them.
COPY setup.cfg pyproject.toml ./
COPY docker/constraints.txt docker/requirements.py docker/
RUN python docker/requirements.py setup.cfg gpu onnx openvino yolo --drop onnxruntime > /tmp/requirements.txt \
 && python -m pip install -r /tmp/requirements.txt -c docker/constraints.txt

COPY . .
# The import check fails the build when the container lacks TensorRT's bindings or ONNX Runtime's CUDA build.
RUN python -m pip install --no-deps . \
 && python -c "import tensorrt, onnxruntime, openvino; providers = onnxruntime.get_available_providers(); \
print('tensorrt', tensorrt.__version__, '| onnxruntime', onnxruntime.__version__, providers); \
assert 'CUDAExecutionProvider' in providers, 'onnxruntime is not the CUDA build'" \
 && deploybench --version

ENTRYPOINT ["deploybench"]
CMD ["--help"]
