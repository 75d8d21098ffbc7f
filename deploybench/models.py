"""The model zoo: resolve what a user typed into a ModelSpec.

A spec string is handed to the registered model sources (timm, Ultralytics, a user's
``module:factory``, an ``.onnx`` file); the first that claims it builds the ModelSpec.
Weights default to a seeded random initialisation so that runs are reproducible offline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench import registry
from deploybench.errors import ModelSpecError, UnknownNameError
from deploybench.files import file_sha256
from deploybench.inputs import count_parameters

if TYPE_CHECKING:
    from deploybench.sources import CheckpointLoad

# Short names people type -> the spec the sources understand.
ALIASES: dict[str, str] = {
    "vit_b16": "timm:vit_base_patch16_224",
    "vit_s16": "timm:vit_small_patch16_224",
    "vit_t16": "timm:vit_tiny_patch16_224",
    "deit_s": "timm:deit_small_patch16_224",
    "mobilenetv4": "timm:mobilenetv4_conv_small",
    "mobilenetv3": "timm:mobilenetv3_large_100",
    "mobilenetv2": "timm:mobilenetv2_100",
    "resnet18": "timm:resnet18",
    "resnet50": "timm:resnet50",
    "efficientnet_b0": "timm:efficientnet_b0",
    "convnext_t": "timm:convnext_tiny",
    "swin_t": "timm:swin_tiny_patch4_window7_224",
    "regnety_8gf": "timm:regnety_080",
    "yolov8n": "ultralytics:yolov8n",
    "yolov8s": "ultralytics:yolov8s",
    "yolo11n": "ultralytics:yolo11n",
    "yolo11s": "ultralytics:yolo11s",
}


@dataclass(frozen=True)
class ModelRef:
    """Everything needed to rebuild the same model in another process (plain data)."""

    text: str  # what the user typed: an alias, a library's name (timm:..., yolo...), a file
    pretrained: bool = False
    checkpoint: str | None = None
    trust_checkpoint: bool = False
    checkpoint_partial: bool = False  # load the tensors that fit and leave the rest at their initialisation
    seed: int = 0
    data_init: bool = False  # random weights: re-estimate BatchNorm statistics on real images (data_init.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def weights_label(self) -> str:
        """Which weights this reference asks for, in words: random, pretrained or the checkpoint file."""
        if self.checkpoint:
            return f"checkpoint {self.checkpoint} ({'partial' if self.checkpoint_partial else 'full'})"
        return "pretrained" if self.pretrained else f"random (seed {self.seed})"


@dataclass(frozen=True)
class InputSpec:
    """One image input, without the batch dimension."""

    name: str = "input"
    shape: tuple[int, ...] = (3, 224, 224)
    dtype: str = "float32"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    value_range: tuple[float, float] = (0.0, 1.0)

    def with_batch(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.shape)


@dataclass
class ModelSpec:
    """A resolved model: how to build it and what it eats."""

    name: str
    ref: ModelRef
    source: str
    task: str
    input: InputSpec
    library: str
    library_version: str
    weights: str
    factory: Callable[[], Any] | None = None
    # Deployment-only rewrites applied after the parameter count (e.g. Conv+BN fusion).
    prepare: Callable[[Any], Any] | None = None
    # The library's own image preprocessing: PIL image -> normalised CHW array. None: resize + normalise.
    preprocess: Callable[[Any], Any] | None = None
    parameters: int | None = None
    # INT8: the built module -> operations to keep in float, as the library's own exporter keeps
    # them (OpenVINO node-name regexes, op types); e.g. a detection head's box decoding and sigmoid.
    int8_float_scope: Callable[[Any], tuple[tuple[str, ...], tuple[str, ...]]] | None = None
    onnx_path: Path | None = None
    checkpoint_load: CheckpointLoad | None = None  # what a --checkpoint load matched, once built
    # An ONNX file may take several inputs: those after ``input``, in the graph's order.
    extra_inputs: tuple[InputSpec, ...] = ()
    # An ONNX file whose batch axis is a number rather than a name runs at that batch only.
    fixed_batch: int | None = None
    # Random library weights get their BatchNorm statistics re-estimated on real images (data_init.py);
    # decided once, in resolve().
    data_init: bool = False
    # The identity fixes the module's code and weights (a released library's version, a file's
    # hash), so what is computed from the model may be kept between runs (model_records.py).
    # False for the user's own code, which changes without a version.
    pinned: bool = False
    notes: list[str] = field(default_factory=list)
    _module: Any = field(default=None, repr=False)

    @property
    def has_module(self) -> bool:
        return self.factory is not None

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        """Every input, in the order the model takes them."""
        return (self.input, *self.extra_inputs)

    def release(self) -> None:
        """Drop the built module (``build`` makes it again); its memory goes back before the next model."""
        self._module = None

    def build(self) -> Any:
        """The torch module in eval mode, built once per spec (seeded, weights loaded)."""
        if self.factory is None:
            raise ModelSpecError(f"{self.name} is an ONNX file; it has no PyTorch module to export or run")
        if self._module is None:
            import torch

            from deploybench.sources import load_checkpoint  # sources build ModelSpecs: imported when used

            torch.manual_seed(self.ref.seed)
            module = self.factory()
            if self.ref.checkpoint:
                self.checkpoint_load = load_checkpoint(
                    module,
                    Path(self.ref.checkpoint),
                    trust=self.ref.trust_checkpoint,
                    partial=self.ref.checkpoint_partial,
                )
                self.weights = f"{self.ref.weights_label()}: {self.checkpoint_load.summary()}"
            self.parameters = count_parameters(module)  # as the library builds it
            if self.data_init:
                self._reestimate_batchnorm(module)
            if self.prepare is not None:
                module = self.prepare(module)
            self._module = module.eval()
        return self._module

    def _reestimate_batchnorm(self, module: Any) -> None:
        from deploybench import data_init, sample_images

        images, _ = sample_images.sample_batch(
            self.input, self.preprocess, data_init.INIT_IMAGES, sample_images.INIT_SEED
        )
        data_init.reestimate_batchnorm(module, images)

    def identity(self) -> dict[str, Any]:
        """What determines architecture and weights, known without building the model."""
        weights: Any = "pretrained" if self.ref.pretrained else f"random(seed={self.ref.seed})"
        if self.data_init:
            from deploybench import data_init, sample_images

            photos = sorted(p.name for p in sample_images.bundled_photos())
            weights += f", batchnorm re-estimated (v{data_init.VERSION}, photos: {','.join(photos) or 'none'})"
        if self.ref.checkpoint:
            weights = {"checkpoint_sha256": file_sha256(Path(self.ref.checkpoint))}
        if self.onnx_path is not None:
            weights = {"onnx_sha256": file_sha256(self.onnx_path)}
        return {
            "source": self.source,
            "name": self.name,
            "library": self.library,
            "library_version": self.library_version,
            "weights": weights,
            "input": list(self.input.shape),
        }

    def identity_hash(self) -> str:
        import json

        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()


def resolve(model: str | ModelRef, **weights: Any) -> ModelSpec:
    """Resolve what the user typed (or a ModelRef) into a ModelSpec through the registered sources."""
    ref = model if isinstance(model, ModelRef) else ModelRef(text=model.strip(), **weights)
    if not ref.text:
        raise ModelSpecError("empty model spec; name a model such as resnet50, yolov8n or timm:<name>")
    if ref.pretrained and ref.checkpoint:
        raise ModelSpecError("choose either --pretrained or --checkpoint, not both")
    if ref.checkpoint_partial and not ref.checkpoint:
        raise ModelSpecError("--checkpoint-partial needs --checkpoint PATH")
    text = ALIASES.get(ref.text, ref.text)
    candidates = sorted((registry.sources.get(n) for n in registry.sources.names()), key=lambda c: c.priority)
    for source_cls in candidates:
        source = source_cls()
        if source.claims(text):
            registry.sources.require(source_cls.name)
            spec = source.resolve(text, ref)
            if ref.text in ALIASES:
                spec.notes.append(f"alias {ref.text!r} -> {text}")
            spec.data_init = spec.has_module and spec.weights == "random" and ref.data_init and not ref.checkpoint
            if spec.has_module and (ref.checkpoint or spec.weights == "random"):
                spec.weights = ref.weights_label()  # the checkpoint file, or the seed
            if spec.data_init:
                spec.weights += ", BatchNorm statistics re-estimated on bundled photos"
            if not ref.pretrained and not ref.checkpoint and spec.has_module:
                spec.notes.append(
                    "random initialisation (seeded); pass --pretrained or --checkpoint PATH for real weights"
                )
            if spec.data_init:
                spec.notes.append(
                    "BatchNorm statistics re-estimated on crops of bundled photos (never the parity "
                    "images) so random-weight outputs follow the input; the reference and every "
                    "artifact share these weights. This makes deep random networks chaotic: "
                    "low-precision rows may then fail on faithful artifacts"
                )
            return spec
    raise UnknownNameError("model", ref.text, list(ALIASES))


def list_models(pattern: str | None = None) -> list[dict[str, str]]:
    """Aliases, plus the names each source can list, filtered by a glob pattern."""
    import fnmatch

    rows = [
        {"name": alias, "resolves_to": target, "source": target.split(":", 1)[0]} for alias, target in ALIASES.items()
    ]
    for name in registry.sources.names():
        source = registry.sources.get(name)()
        if registry.sources.availability(name).ok and pattern:
            rows += [{"name": n, "resolves_to": f"{name}:{n}", "source": name} for n in source.list_names(pattern)]
    if pattern:
        rows = [r for r in rows if fnmatch.fnmatch(r["name"], pattern) or fnmatch.fnmatch(r["resolves_to"], pattern)]
    seen, unique = set(), []
    for row in rows:
        if row["resolves_to"] not in seen:
            seen.add(row["resolves_to"])
            unique.append(row)
    return unique
