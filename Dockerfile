# deploybench on NVIDIA's PyTorch container, which brings CUDA, cuDNN, PyTorch and TensorRT
# (with its Python bindings); deploybench adds ONNX Runtime for CUDA, OpenVINO, Ultralytics and
# NVML on top. The tag is pinned: a new tag changes library versions, and the regression gate
# refuses results across such a change unless told --force, so bump it on purpose.
#   docker build -t deploybench .
#   docker run --rm --gpus all --ipc=host deploybench compare --models resnet50 --target auto
FROM nvcr.io/nvidia/pytorch:25.01-py3

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/deploybench
COPY . .

# The container's own torch satisfies deploybench's torch requirement, so pip keeps it. The
# "onnx" extra brings the CPU onnxruntime beside onnxruntime-gpu from "gpu"; both install the
# same module, so the CPU one is removed and the GPU one reinstalled over it.
RUN python -m pip install ".[gpu,onnx,openvino,yolo]" \
 && ORT_GPU="$(python -m pip show onnxruntime-gpu | sed -n 's/^Version: //p')" \
 && python -m pip uninstall -y onnxruntime \
 && python -m pip install --force-reinstall --no-deps "onnxruntime-gpu==${ORT_GPU}" \
 && python -c "import tensorrt, onnxruntime, openvino; print('tensorrt', tensorrt.__version__, '| onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())" \
 && deploybench --version

ENTRYPOINT ["deploybench"]
CMD ["--help"]
