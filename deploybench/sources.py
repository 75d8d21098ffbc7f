"""Model sources: the libraries models come from. Registered via ``deploybench.sources``."""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from deploybench.errors import ModelSpecError, UnknownNameError, UserFileError, reading
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
            return text[len(prefix) + 1 :]
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
    """An existing ``.onnx`` file, for runtime-only benchmarking (no PyTorch module)."""

    name = "onnx"
    prefixes = ("onnx",)
    requires = ("onnx",)
    extra = "onnx"
    priority = 10

    def claims(self, text: str) -> bool:
        return super().claims(text) or text.endswith(".onnx")

    def resolve(self, text: str, ref: ModelRef) -> ModelSpec:
        path = Path(_strip_prefix(text, self.prefixes)).expanduser()
        graph = read_onnx_graph(path)
        outputs = graph.outputs
        task = "classification" if len(outputs) == 1 and len(outputs[0].shape) == 2 else "other"
        first, *rest = graph.inputs
        return ModelSpec(
            name=path.stem,
            ref=ref,
            source=self.name,
            task=task,
            input=first,
            extra_inputs=tuple(rest),
            fixed_batch=graph.fixed_batch,
            library="onnx",
            library_version=_version("onnx"),
            weights="from file",
            onnx_path=path.resolve(),
            pinned=not graph.external_data,  # the identity holds the file's hash, not its data files'
        )


@dataclass(frozen=True)
class OnnxTensor:
    name: str
    shape: tuple[int | str, ...]  # a name where the axis is symbolic
    dtype: str


@dataclass(frozen=True)
class OnnxGraph:
    """What an ONNX file declares: its inputs (as InputSpecs), its outputs, a fixed batch if any."""

    inputs: list[InputSpec]
    outputs: list[OnnxTensor]
    fixed_batch: int | None
    external_data: bool = False  # weights in files beside it, which the file's hash does not cover


def read_onnx_graph(path: Path) -> OnnxGraph:
    """The inputs and outputs an ONNX file declares; one UserFileError naming the file when it has none."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    if not path.is_file():
        raise ModelSpecError(f"ONNX file {str(path)!r} does not exist; check the path")
    with reading("ONNX file", path, "it is not a readable ONNX model; re-export it"):
        graph = onnx.load(str(path), load_external_data=False).graph

    def tensor(value: Any) -> OnnxTensor:
        kind = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in kind.shape.dim)
        return OnnxTensor(value.name, shape, str(tensor_dtype_to_np_dtype(kind.elem_type)))

    initializers = {i.name for i in graph.initializer}  # old exporters list weights as inputs too
    inputs = [tensor(v) for v in graph.input if v.name not in initializers]
    if not inputs or not graph.output:
        # protobuf reads an empty or foreign file as an empty model rather than failing
        raise UserFileError(
            "ONNX file",
            path,
            "holds no graph with inputs and outputs (empty or not an ONNX model)",
            "re-export it, or check that the path names the model file",
        )
    batch_axes = {t.shape[0] for t in inputs if t.shape}
    first = next(iter(batch_axes)) if len(batch_axes) == 1 else None
    fixed = first if isinstance(first, int) else None
    # Symbolic axes other than the batch have no size to read; 1 is what the file allows for sure.
    specs = [
        InputSpec(
            name=t.name, shape=tuple(d if isinstance(d, int) and d > 0 else 1 for d in t.shape[1:]), dtype=t.dtype
        )
        for t in inputs
    ]
    return OnnxGraph(specs, [tensor(v) for v in graph.output], fixed or None, _has_external_data(graph))


def _has_external_data(graph: Any) -> bool:
    """Whether any tensor of ``graph`` (initializers, sparse ones, constants in attributes, and
    those of subgraphs) keeps its data in a file beside the model."""
    import onnx

    def tensors(g: Any) -> Iterator[Any]:
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        for node in g.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors
                for subgraph in [attribute.g] if attribute.HasField("g") else []:
                    yield from tensors(subgraph)
                for subgraph in attribute.graphs:
                    yield from tensors(subgraph)

    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors(graph))


@dataclass(frozen=True)
class YoloTask:
    """How deploybench runs one Ultralytics task."""

    task: str  # deploybench's name for it; parity has task checks for classification and detection
    model_class: str  # the ultralytics.nn.tasks class that builds it from a yaml
    imgsz: int  # the square size Ultralytics trains and exports this task's models at


# Ultralytics' task names (model.task, guess_model_task) -> what deploybench does with them.
# Segmentation, pose and OBB heads extend the detection output with mask coefficients,
# keypoints or angles: their parity is compared output by output, without a task check.
YOLO_TASKS: dict[str, YoloTask] = {
    "detect": YoloTask("detection", "DetectionModel", 640),
    "classify": YoloTask("classification", "ClassificationModel", 224),
    "segment": YoloTask("segmentation", "SegmentationModel", 640),
    "pose": YoloTask("pose", "PoseModel", 640),
    "obb": YoloTask("obb", "OBBModel", 1024),  # DOTA models: trained at 1024
}


class UltralyticsSource(ModelSource):
    """Ultralytics YOLO models, built from the package's yaml or loaded from a ``.pt`` file.

    The task (detect, classify, segment, pose, obb) and the input size come from the model
    itself: the yaml's head for built models, the checkpoint's own arguments for ``.pt`` files.
    """

    name = "ultralytics"
    prefixes = ("ultralytics", "yolo")
    requires = ("ultralytics",)
    extra = "yolo"
    priority = 20
    _pattern = re.compile(r"^yolo(v?\d+)[nsmlx]?(-\w+)?$")

    def claims(self, text: str) -> bool:
        return (
            super().claims(text)
            or bool(self._pattern.match(text))
            or (text.endswith(".pt") and Path(text).name.startswith("yolo"))
        )

    def resolve(self, text: str, ref: ModelRef) -> ModelSpec:
        name = _strip_prefix(text, self.prefixes)
        if name.endswith(".pt"):
            stem, factory, task_name, imgsz = self._from_file(Path(name), ref)
        else:
            stem = name.removesuffix(".yaml")
            task_name = _yaml_task(stem)
            imgsz = None

            def factory() -> Any:
                return _build_yolo(stem, task_name, ref)

        task = _yolo_task(stem, task_name)
        size = imgsz or task.imgsz
        weights = "from file" if name.endswith(".pt") else "pretrained" if ref.pretrained else "random"
        return ModelSpec(
            name=stem,
            ref=ref,
            source=self.name,
            task=task.task,
            input=InputSpec(name="images", shape=(3, size, size)),
            library="ultralytics",
            library_version=_version("ultralytics"),
            weights=weights,
            factory=factory,
            prepare=_prepare_yolo_for_export,
            int8_float_scope=_yolo_head_float_scope,
            pinned=not ref.pretrained and _packaged_yolo(name),  # released weights are a file in the working folder
        )

    @staticmethod
    def _from_file(path: Path, ref: ModelRef) -> tuple[str, Any, str | None, int | None]:
        """A .pt file is loaded here: its task and training size are only known from inside it."""
        if not path.is_file():
            raise ModelSpecError(f"YOLO weights {str(path)!r} do not exist; check the path or use a name like yolov8n")
        model = _load_yolo_file(path, ref)
        args = getattr(model, "args", None) or {}
        imgsz = args.get("imgsz") if isinstance(args, dict) else None
        imgsz = max(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz

        def factory() -> Any:
            return model

        return path.stem, factory, _module_task(model), int(imgsz) if imgsz else None


def _yolo_head_float_scope(module: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The head's box decoding (DFL, anchors, strides) and class sigmoid stay in float under
    INT8, as Ultralytics' own OpenVINO export keeps them: quantized, the decoded boxes and
    scores lose their input-dependent part. The output's concatenation of boxes (pixels) and
    scores (0..1) too: quantized, both would share one scale and every score would round to
    0. OpenVINO names nodes by module path; the head is the last layer."""
    head = rf".*model\.{len(module.model) - 1}"
    return (
        rf"{head}/.*/Add",
        rf"{head}/.*/Sub.*",
        rf"{head}/.*/Mul.*",
        rf"{head}/.*/Div.*",
        rf"{head}/.*/Concat.*",
        rf"{head}\.dfl.*",
    ), ("Sigmoid",)


def _packaged_yolo(name: str) -> bool:
    """Whether Ultralytics builds ``name`` from its own packaged yaml: a bare model name, with
    no ``<name>.yaml`` in the working folder, which Ultralytics would read first. A file's
    contents are not in the model's identity; the package's version is."""
    if Path(name).name != name or Path(name).suffix:
        return False
    return not Path(f"{name}.yaml").exists()


def _yaml_task(stem: str) -> str | None:
    """The task the yaml's head declares (Classify, Segment, Pose, OBB, Detect)."""
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    try:
        return guess_model_task(yaml_model_load(f"{stem}.yaml"))
    except FileNotFoundError as exc:
        raise UnknownNameError(
            "YOLO model",
            stem,
            [
                "yolov8n",
                "yolov8s",
                "yolov8m",
                "yolo11n",
                "yolo11s",
                "yolov8n-cls",
                "yolov8n-seg",
                "yolov8n-pose",
                "yolov8n-obb",
            ],
        ) from exc


def _module_task(model: Any) -> str | None:
    from ultralytics.nn.tasks import guess_model_task

    return getattr(model, "task", None) or guess_model_task(model)


def _yolo_task(stem: str, task_name: str | None) -> YoloTask:
    if task_name not in YOLO_TASKS:
        raise ModelSpecError(
            f"{stem} is an Ultralytics {task_name or 'unknown-task'} model, which deploybench does "
            f"not run; supported tasks: {', '.join(YOLO_TASKS)}"
        )
    return YOLO_TASKS[task_name]


def _load_yolo_file(path: Path, ref: ModelRef) -> Any:
    """An Ultralytics .pt file (a pickle that runs code), loaded only when the user trusts it."""
    from ultralytics.nn import tasks

    if not ref.trust_checkpoint:
        raise ModelSpecError(
            "Ultralytics .pt files are pickles that run code when loaded; "
            "pass --trust-checkpoint if you trust their author"
        )
    # renamed from attempt_load_one_weight in Ultralytics 8.4
    names = ("load_checkpoint", "attempt_load_one_weight")
    loader = next((getattr(tasks, name) for name in names if hasattr(tasks, name)), None)
    if loader is None:
        raise ModelSpecError(f"this Ultralytics has no {' or '.join(names)}; install ultralytics>=8.3")
    with reading("YOLO weights", path, "it is corrupt or not an Ultralytics checkpoint"):
        model, _ = loader(str(path))
    return model.float()


def _build_yolo(stem: str, task_name: str | None, ref: ModelRef) -> Any:
    """The model as Ultralytics builds it for its task: from the yaml, or its pretrained weights."""
    from ultralytics.nn import tasks

    if ref.pretrained:
        return _load_yolo_file(Path(f"{stem}.pt"), ref)
    model_class = getattr(tasks, _yolo_task(stem, task_name).model_class)
    return model_class(f"{stem}.yaml", verbose=False).float()


def _prepare_yolo_for_export(model: Any) -> Any:
    """Fuse Conv+BN and switch the head to export mode, as Ultralytics' own exporter does."""
    from ultralytics.nn.modules.head import Classify, Detect

    model = model.fuse(verbose=False).eval()
    for layer in model.modules():
        # Detect covers its Segment, Pose and OBB subclasses. In export mode a detection head
        # returns one tensor instead of (y, feature maps) and a Classify head its probabilities
        # alone instead of (probabilities, logits).
        if isinstance(layer, (Detect, Classify)):
            head: Any = layer  # the export flags are plain attributes torch's typing does not know
            head.export, head.format = True, "onnx"
        if isinstance(layer, Detect):
            # Recompute anchors every call instead of comparing cached shapes: that comparison
            # guards on the batch size and makes torch.export specialise it away.
            layer.dynamic = True
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
            raise ModelSpecError(
                f"{module_name} has no callable {attr!r}; name a function in it that returns "
                "a torch.nn.Module, as package.module:factory"
            )
        input_spec = getattr(factory, "input_spec", None) or InputSpec()
        task = getattr(factory, "task", "classification")
        return ModelSpec(
            name=target,
            ref=ref,
            source=self.name,
            task=task,
            input=input_spec,
            library=module_name.split(".")[0],
            library_version=_version(module_name.split(".")[0]),
            weights="factory",
            factory=factory,
        )


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
        pretrained_cfg = timm.get_pretrained_cfg(name)
        cfg: dict[str, Any] = pretrained_cfg.to_dict() if pretrained_cfg is not None else {}
        size = tuple(cfg.get("input_size", (3, 224, 224)))
        input_spec = InputSpec(
            name="input",
            shape=size,
            mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
            std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        )

        def build() -> Any:
            return timm.create_model(name, pretrained=ref.pretrained)

        return ModelSpec(
            name=name,
            ref=ref,
            source=self.name,
            task="classification",
            input=input_spec,
            library="timm",
            library_version=_version("timm"),
            weights="pretrained" if ref.pretrained else "random",
            factory=build,
            preprocess=_timm_preprocess(cfg),
            pinned=True,
        )

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


# Checkpoints: a user's weights loaded into the module a source built.


def load_checkpoint(module: Any, path: Path, trust: bool = False, partial: bool = False) -> CheckpointLoad:
    """Load safetensors or a state dict into ``module``; pickled code is refused unless trusted.

    Strict by default: any missing, unexpected or shape-mismatched tensor refuses the whole
    file, naming the keys. ``partial`` loads the tensors that fit (a backbone into a model
    with another head); a file that matches nothing is refused either way.
    """
    import torch

    if not path.is_file():
        raise ModelSpecError(
            f"checkpoint {str(path)!r} does not exist; pass the path of a .safetensors or state-dict file"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as exc:  # unpickling errors come in many types
        # weights_only=True names a global it will not import; corrupt bytes fail differently.
        if "Unsupported global" in str(exc):
            raise ModelSpecError(
                f"checkpoint {path.name} contains pickled code, which is refused for safety; "
                "re-save it as a state dict or safetensors, or pass --trust-checkpoint if you trust its author"
            ) from exc
        raise ModelSpecError(
            f"checkpoint {path.name} could not be read ({type(exc).__name__}: {_load_failure(exc)}); "
            "it is corrupt or not a checkpoint: pass a .safetensors file or a torch.save()d state dict"
        ) from exc
    for key in ("state_dict", "model_state_dict", "model", "ema"):
        if isinstance(state, dict) and isinstance(inner := state.get(key), dict):
            state = inner
    if not isinstance(state, dict):
        raise ModelSpecError(
            f"checkpoint {path.name} holds a {type(state).__name__}, not a state dict; save model.state_dict() instead"
        )
    result = match_state_dict(module.state_dict(), state)
    if not result.loaded:
        raise ModelSpecError(
            f"checkpoint {path.name} matches none of the model's weights "
            f"(first keys: {list(state)[:3]}); is it for this architecture?"
        )
    if not result.complete and not partial:
        raise ModelSpecError(
            f"checkpoint {path.name} does not fit this model: {result.summary()} "
            f"({result.differences()}); is it for this architecture? Pass --checkpoint-partial "
            f"to load the {len(result.loaded)} tensors that fit and keep the rest at their initialisation"
        )
    module.load_state_dict({key: state[key] for key in result.loaded}, strict=False)
    return result


@dataclass(frozen=True)
class CheckpointLoad:
    """How a checkpoint's tensors matched the model's: the keys in each outcome."""

    loaded: tuple[str, ...]
    missing: tuple[str, ...]  # the model has them, the checkpoint does not
    unexpected: tuple[str, ...]  # the checkpoint has them, the model does not
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # (key, model shape, checkpoint shape)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        return (
            f"{len(self.loaded)} tensors loaded, {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.mismatched)} shape-mismatched"
        )

    def differences(self, shown: int = 3) -> str:
        """A few differing keys of each kind, then how many more."""
        shapes = [f"{key} {list(mine)} vs {list(theirs)}" for key, mine, theirs in self.mismatched]
        parts = [
            f"{label}: {_first(keys, shown)}"
            for label, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("shape", shapes))
            if keys
        ]
        return "; ".join(parts)


def _first(items: Sequence[str], shown: int) -> str:
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")


def match_state_dict(model_state: dict[str, Any], checkpoint: dict[str, Any]) -> CheckpointLoad:
    """Sort a checkpoint's keys against the model's: loadable, missing, unexpected, wrong shape."""
    mismatched = tuple(
        (key, tuple(model_state[key].shape), tuple(getattr(value, "shape", ())))
        for key, value in checkpoint.items()
        if key in model_state and tuple(getattr(value, "shape", ())) != tuple(model_state[key].shape)
    )
    wrong = {key for key, _, _ in mismatched}
    return CheckpointLoad(
        loaded=tuple(k for k in checkpoint if k in model_state and k not in wrong),
        missing=tuple(k for k in model_state if k not in checkpoint),
        unexpected=tuple(k for k in checkpoint if k not in model_state),
        mismatched=mismatched,
    )


def _load_failure(exc: Exception) -> str:
    """The line of a checkpoint-loading error that names the problem (torch's run to paragraphs)."""
    text = str(exc)
    detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else text
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
