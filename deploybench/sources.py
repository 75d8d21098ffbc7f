"""Model sources: the libraries models come from. Registered via ``deploybench.sources``."""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from deploybench.errors import ModelSpecError, UnknownNameError
from deploybench.models import InputSpec, ModelRef, ModelSpec


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "unknown"


def _strip_prefix(text: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if text.startswith(prefix + ":"):
            return text[len(prefix) + 1:]
    return text


class ModelSource(ABC):
    """Claims spec strings it understands and builds a ModelSpec for them."""

    name: ClassVar[str]
    prefixes: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    priority: ClassVar[int] = 50  # lower claims first

    def claims(self, text: str) -> bool:
        return any(text.startswith(p + ":") for p in self.prefixes)

    @abstractmethod
    def resolve(self, text: str, ref: ModelRef) -> ModelSpec:
        """Build the ModelSpec (cheap: the module itself is built lazily)."""

    def list_names(self, pattern: str) -> list[str]:
        return []


class OnnxFileSource(ModelSource):
    """An existing ``.onnx`` file, for runtime-only benchmarking."""

    name = "onnx"
    prefixes = ("onnx",)
    requires = ("onnx",)
    extra = "onnx"
    priority = 10

    def claims(self, text: str) -> bool:
        return super().claims(text) or text.endswith(".onnx")

    def resolve(self, text: str, ref: ModelRef) -> ModelSpec:
        import onnx

        path = Path(_strip_prefix(text, self.prefixes)).expanduser()
        if not path.is_file():
            raise ModelSpecError(f"ONNX file {str(path)!r} does not exist; check the path")
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:
            raise ModelSpecError(f"{path.name} is not a readable ONNX model ({exc}); re-export it") from exc
        initializers = {i.name for i in graph.initializer}
        first = next(i for i in graph.input if i.name not in initializers)
        dims = [d.dim_value or 1 for d in first.type.tensor_type.shape.dim]
        task = "classification" if len(graph.output) == 1 and len(graph.output[0].type.tensor_type.shape.dim) == 2 else "other"
        return ModelSpec(name=path.stem, ref=ref, source=self.name, task=task,
                         input=InputSpec(name=first.name, shape=tuple(dims[1:])),
                         library="onnx", library_version=_version("onnx"), weights="from file",
                         onnx_path=path.resolve())


class UltralyticsSource(ModelSource):
    """Ultralytics YOLO models, built from the package's yaml or loaded from a ``.pt`` file."""

    name = "ultralytics"
    prefixes = ("ultralytics", "yolo")
    requires = ("ultralytics",)
    extra = "yolo"
    priority = 20
    _pattern = re.compile(r"^yolo(v?\d+)[nsmlx]?(-\w+)?$")

    def claims(self, text: str) -> bool:
        return (super().claims(text) or bool(self._pattern.match(text))
                or (text.endswith(".pt") and Path(text).name.startswith("yolo")))

    def resolve(self, text: str, ref: ModelRef) -> ModelSpec:
        name = _strip_prefix(text, self.prefixes)
        is_file = name.endswith(".pt")
        if is_file and not Path(name).is_file():
            raise ModelSpecError(f"YOLO weights {name!r} do not exist; check the path or use a name like yolov8n")
        stem = Path(name).stem if is_file else name.removesuffix(".yaml")

        def build() -> Any:
            return _build_yolo(stem, Path(name) if is_file else None, ref)

        weights = "from file" if is_file else "pretrained" if ref.pretrained else "random"
        return ModelSpec(name=stem, ref=ref, source=self.name, task="detection",
                         input=InputSpec(name="images", shape=(3, 640, 640)),
                         library="ultralytics", library_version=_version("ultralytics"),
                         weights=weights, factory=build, prepare=_prepare_yolo_for_export,
                         int8_float_scope=_yolo_head_float_scope)


def _yolo_head_float_scope(module: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The head's box decoding (DFL, anchors, strides) and class sigmoid stay in float under
    INT8, as Ultralytics' own OpenVINO export keeps them: quantized, the decoded boxes and
    scores lose their input-dependent part. The output's concatenation of boxes (pixels) and
    scores (0..1) too: quantized, both would share one scale and every score would round to
    0. OpenVINO names nodes by module path; the head is the last layer."""
    head = rf".*model\.{len(module.model) - 1}"
    return (rf"{head}/.*/Add", rf"{head}/.*/Sub.*", rf"{head}/.*/Mul.*", rf"{head}/.*/Div.*", rf"{head}/.*/Concat.*",
            rf"{head}\.dfl.*"), ("Sigmoid",)


def _build_yolo(stem: str, weights_file: Path | None, ref: ModelRef) -> Any:
    """The detection model as Ultralytics builds it (from yaml, or a trusted .pt file)."""
    from ultralytics.nn import tasks
    from ultralytics.nn.tasks import DetectionModel

    if weights_file is not None or ref.pretrained:
        if not ref.trust_checkpoint:
            raise ModelSpecError("Ultralytics .pt files are pickles that run code when loaded; "
                                 "pass --trust-checkpoint if you trust their author")
        # renamed from attempt_load_one_weight in Ultralytics 8.4
        loader = getattr(tasks, "load_checkpoint", None) or getattr(tasks, "attempt_load_one_weight")
        model, _ = loader(str(weights_file or f"{stem}.pt"))
    else:
        try:
            model = DetectionModel(f"{stem}.yaml", verbose=False)
        except FileNotFoundError as exc:
            raise UnknownNameError("YOLO model", stem, ["yolov8n", "yolov8s", "yolov8m", "yolo11n", "yolo11s"]) from exc
    return model.float()


def _prepare_yolo_for_export(model: Any) -> Any:
    """Fuse Conv+BN and switch the head to export mode, as Ultralytics' own exporter does."""
    model = model.fuse(verbose=False).eval()
    for module in model.modules():
        if type(module).__name__ in ("Detect", "v10Detect"):
            module.export = True  # the head then returns one tensor instead of (y, feature maps)
            module.format = "onnx"
            # Recompute anchors every call instead of comparing cached shapes: that comparison
            # guards on the batch size and makes torch.export specialise it away.
            module.dynamic = True
    return model


class PythonSource(ModelSource):
    """A user's own ``package.module:factory``. This imports and runs the user's code."""

    name = "python"
    prefixes = ("python", "py")
    priority = 30
    _pattern = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

    def claims(self, text: str) -> bool:
        if super().claims(text):
            return True
        head = text.split(":", 1)[0]
        return ":" in text and head not in ("timm", "onnx", "ultralytics", "yolo")

    def resolve(self, text: str, ref: ModelRef) -> ModelSpec:
        target = _strip_prefix(text, self.prefixes)
        if not self._pattern.match(target):
            raise ModelSpecError(f"malformed model spec {text!r}; a Python source is written as package.module:factory")
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelSpecError(f"cannot import {module_name!r} ({exc}); is it on PYTHONPATH?") from exc
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise ModelSpecError(f"{module_name} has no callable {attr!r}; name a function in it that returns "
                                 "a torch.nn.Module, as package.module:factory")
        input_spec = getattr(factory, "input_spec", None) or InputSpec()
        task = getattr(factory, "task", "classification")
        return ModelSpec(name=target, ref=ref, source=self.name, task=task, input=input_spec,
                         library=module_name.split(".")[0], library_version=_version(module_name.split(".")[0]),
                         weights="factory", factory=factory)


class TimmSource(ModelSource):
    """Every model timm can create, by bare name or ``timm:`` prefix."""

    name = "timm"
    prefixes = ("timm",)
    requires = ("timm",)
    priority = 90  # the fallback for bare names

    def claims(self, text: str) -> bool:
        return super().claims(text) or ":" not in text

    def resolve(self, text: str, ref: ModelRef) -> ModelSpec:
        import timm

        name = _strip_prefix(text, self.prefixes)
        if not timm.is_model(name):
            from deploybench.models import ALIASES

            raise UnknownNameError("model", name, [*timm.list_models(), *ALIASES])
        cfg = timm.get_pretrained_cfg(name)
        cfg = cfg.to_dict() if cfg is not None else {}
        size = tuple(cfg.get("input_size", (3, 224, 224)))
        input_spec = InputSpec(name="input", shape=size, mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                               std=tuple(cfg.get("std", (0.229, 0.224, 0.225))))

        def build() -> Any:
            return timm.create_model(name, pretrained=ref.pretrained)

        return ModelSpec(name=name, ref=ref, source=self.name, task="classification", input=input_spec,
                         library="timm", library_version=_version("timm"),
                         weights="pretrained" if ref.pretrained else "random", factory=build,
                         preprocess=_timm_preprocess(cfg))

    def list_names(self, pattern: str) -> list[str]:
        import timm

        return list(timm.list_models(pattern))


def _timm_preprocess(pretrained_cfg: dict[str, Any]) -> Any:
    """timm's own evaluation transform (resize, centre crop, normalise) for this model's config."""

    def preprocess(image: Any) -> Any:
        from timm.data import create_transform, resolve_data_config

        transform = create_transform(**resolve_data_config({}, pretrained_cfg=pretrained_cfg))
        return transform(image).numpy()

    return preprocess
