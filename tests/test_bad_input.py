"""Bad input: one line that says what to do, exit code 2, no traceback without ``-v``, and
nothing written half."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import faulty_plugins
import pytest
from faulty_plugins import MISSING_EXTRA, TINY_NET

from deploybench import registry
from deploybench.artifact import Artifact
from deploybench.cache import ArtifactCache
from deploybench.cli import main
from deploybench.errors import RuntimeLoadError
from deploybench.exporters.base import ExportOptions
from deploybench.models import resolve
from deploybench.registry import Availability
from deploybench.runtimes.base import RuntimeOptions

UNWRITABLE = "/dev/null/sub"  # under a regular file: no user, root included, can create it


@dataclass
class Files:
    """Inputs a test hands to the CLI, made in a fresh folder."""

    root: Path

    def garbage(self, name: str) -> str:
        path = self.root / name
        path.write_bytes(b"\x80\x02 this is not a model \x00\xff" * 8)
        return str(path)

    def missing(self, name: str) -> str:
        return str(self.root / name)

    def empty(self, name: str) -> str:
        path = self.root / name
        path.write_bytes(b"")
        return str(path)

    def good_images(self, count: int) -> str:
        """A folder of ``count`` readable images."""
        from PIL import Image

        folder = self.root / f"good-{count}"
        folder.mkdir(exist_ok=True)
        for index in range(count):
            Image.new("RGB", (40, 30), (20 * index, 30, 30)).save(folder / f"{index}.png")
        return str(folder)

    def images(self, bad: str) -> str:
        """A folder of one good image and ``bad``: a JPEG with a broken header, or one cut short."""
        from PIL import Image

        folder = self.root / "images"
        folder.mkdir(exist_ok=True)
        Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / "a-good.png")
        Image.new("RGB", (64, 64), (10, 200, 30)).save(folder / "b-bad.jpg")
        data = (folder / "b-bad.jpg").read_bytes()
        (folder / "b-bad.jpg").write_bytes(b"\x00" * 16 + data if bad == "header" else data[: len(data) // 2])
        return str(folder)

    def results(self, text: str) -> str:
        folder = self.root / "earlier"
        folder.mkdir(exist_ok=True)
        (folder / "results.json").write_text(text)
        return str(folder)

    @property
    def out(self) -> str:
        return str(self.root / "out")

    @property
    def cache(self) -> str:
        return str(self.root / "cache")


def run_args(files: Files, *args: str) -> list[str]:
    """A quick one-cell run of the tiny model with this test's cache."""
    return [*args, "--quick", "--no-isolate", "--cache", files.cache]


def compare(files: Files, *args: str, model: str = TINY_NET) -> list[str]:
    return run_args(files, "compare", "--models", model, "--precisions", "fp32", "--batch", "1", *args)


SCHEMA_999 = json.dumps({"schema_version": 999, "created": "2020-01-01T00:00:00+00:00", "rows": []})


def bench(files: Files, *args: str) -> list[str]:
    return run_args(files, "bench", TINY_NET, *args)


# name -> (the command line, text the one error line must hold)
CASES: dict[str, tuple[Callable[[Files], list[str]], tuple[str, ...]]] = {
    "unknown model": (
        lambda f: ["info", "test_resnett"],
        ("unknown model 'test_resnett'", "did you mean", "'test_resnet'"),
    ),
    "unknown model in a compare": (
        lambda f: compare(f, "--runtimes", "torch", "--out", f.out, model="resnet5O"),
        ("unknown model 'resnet5O'", "did you mean"),
    ),
    "unknown model alias": (lambda f: ["info", "resnet5O"], ("did you mean", "'resnet50'")),
    "unknown runtime": (lambda f: bench(f, "--runtime", "onnxrt"), ("did you mean 'onnxruntime'",)),
    "unknown format": (lambda f: ["export", TINY_NET, "--to", "onx"], ("unknown format 'onx'", "did you mean 'onnx'")),
    "unknown target": (
        lambda f: ["compare", "--models", TINY_NET, "--target", "h200"],
        ("valid: a100", "--target-file"),
    ),
    "malformed module:factory": (
        lambda f: ["info", "my.models:build-net"],
        ("malformed model spec", "package.module:factory"),
    ),
    "module:factory not importable": (
        lambda f: ["info", "no_such_pkg_xyz.models:net"],
        ("cannot import", "PYTHONPATH"),
    ),
    "module:factory without the factory": (
        lambda f: ["info", "faulty_plugins:no_such_factory"],
        ("has no callable 'no_such_factory'", "package.module:factory"),
    ),
    "missing .onnx": (lambda f: ["info", f.missing("model.onnx")], ("does not exist", "check the path")),
    "empty .onnx (info)": (
        lambda f: ["info", f.empty("empty.onnx")],
        ("ONNX file", "empty.onnx holds no graph", "re-export"),
    ),
    "corrupt JPEG in --images": (
        lambda f: compare(f, "--runtimes", "torch", "--images", f.images(bad="header")),
        ("image", "b-bad.jpg could not be read", "UnidentifiedImageError", "remove it or replace it"),
    ),
    "truncated JPEG in --images": (
        lambda f: compare(f, "--runtimes", "torch", "--images", f.images(bad="truncated")),
        ("image", "b-bad.jpg could not be read", "Truncated", "remove it or replace it"),
    ),
    "binary target file": (
        lambda f: compare(f, "--runtimes", "torch", "--target-file", f.garbage("mine.toml")),
        ("target file", "mine.toml is not text", "TOML"),
    ),
    "corrupt .onnx (info)": (lambda f: ["info", f.garbage("model.onnx")], ("not a readable ONNX model", "re-export")),
    "corrupt .onnx (bench)": (
        lambda f: run_args(f, "bench", f.garbage("model.onnx"), "--runtime", "onnxruntime"),
        ("not a readable ONNX model", "re-export"),
    ),
    "missing checkpoint": (
        lambda f: ["info", TINY_NET, "--checkpoint", f.missing("w.pt")],
        ("does not exist", ".safetensors"),
    ),
    "corrupt checkpoint": (
        lambda f: ["info", TINY_NET, "--checkpoint", f.garbage("w.pt")],
        ("could not be read", "corrupt", ".safetensors"),
    ),
    "corrupt safetensors": (
        lambda f: ["info", TINY_NET, "--checkpoint", f.garbage("w.safetensors")],
        ("could not be read", "SafetensorError"),
    ),
    "precision the format lacks": (
        lambda f: ["export", TINY_NET, "--to", "onnx", "--precision", "int8", "--cache", f.cache],
        ("onnx does not support precision 'int8'", "supported: fp32, fp16"),
    ),
    "device the format lacks": (
        lambda f: ["export", TINY_NET, "--to", "ts", "--device", "tpu", "--cache", f.cache],
        ("does not export for device 'tpu'", "supported: cpu, cuda"),
    ),
    "precision the runtime lacks": (
        lambda f: bench(f, "--runtime", "onnxruntime", "--precision", "bf16"),
        ("onnxruntime supports precisions fp32, tf32, fp16, not bf16",),
    ),
    "device the runtime lacks": (
        lambda f: bench(f, "--runtime", "torch", "--device", "tpu"),
        ("torch runs on cpu, cuda, not tpu",),
    ),
    "format the runtime does not load": (
        lambda f: bench(f, "--runtime", "onnxruntime", "--format", "ts"),
        ("nothing to run", "onnxruntime loads onnx"),
    ),
    "formats no runtime of a compare loads": (
        lambda f: compare(f, "--runtimes", "torch,onnxruntime", "--formats", "ov"),
        ("nothing to run", "onnxruntime loads onnx", "torch loads pytorch"),
    ),
    "unknown precision (compare, #16.8)": (
        lambda f: compare(f, "--runtimes", "torch", "--precisions", "int4"),
        ("unknown precision 'int4'", "did you mean 'int8'", "fp16, fp32, int8"),
    ),
    "unknown precision (bench, #16.8)": (
        lambda f: bench(f, "--runtime", "torch", "--precision", "int4"),
        ("unknown precision 'int4'", "valid: "),
    ),
    "empty model list (#16.8)": (
        lambda f: run_args(f, "compare", "--models", "", "--runtimes", "torch"),
        ("no model to run", "--models A,B"),
    ),
    "every cell skipped (#16.8)": (
        lambda f: compare(f, "--runtimes", "torch", "--device", "tpu", "--out", f.out),
        ("nothing to run: every cell was skipped", "torch runs on cpu, cuda, not tpu", "--allow-empty"),
    ),
    "threads below 1 (#16.9)": (
        lambda f: compare(f, "--runtimes", "torch", "--threads", "-2"),
        ("--threads -2 is not a thread count",),
    ),
    "threads zero (bench, #16.9)": (
        lambda f: bench(f, "--runtime", "torch", "--threads", "0"),
        ("--threads 0 is not a thread count",),
    ),
    "batch list with an empty item (#16.9)": (
        lambda f: bench(f, "--runtime", "torch", "--batch", "1,,8"),
        ("malformed batch list '1,,8'",),
    ),
    "misspelt runtime in a compare (#16.10)": (
        lambda f: compare(f, "--runtimes", "torch,onnxrt"),
        ("unknown runtime 'onnxrt'", "did you mean 'onnxruntime'"),
    ),
    "misspelt format in a compare (#16.10)": (
        lambda f: compare(f, "--runtimes", "torch", "--formats", "onx"),
        ("unknown format 'onx'", "did you mean 'onnx'"),
    ),
    "malformed batch list": (
        lambda f: bench(f, "--runtime", "torch", "--batch", "1,x"),
        ("malformed batch list '1,x'", "1,8,32"),
    ),
    "batch size zero": (lambda f: bench(f, "--runtime", "torch", "--batch", "0"), ("positive integers",)),
    "malformed batch range": (
        lambda f: ["export", TINY_NET, "--to", "ts", "--batch", "1:x"],
        ("malformed batch range '1:x'", "MIN:OPT:MAX"),
    ),
    "batch range out of order": (
        lambda f: ["export", TINY_NET, "--to", "ts", "--batch", "8:2"],
        ("1 <= MIN <= OPT <= MAX",),
    ),
    "malformed tolerance": (
        lambda f: compare(f, "--runtimes", "torch", "--tolerance", "cosine=high"),
        ("malformed tolerance", "max_spread_error in [0, 10]"),
    ),
    "tolerance out of range": (
        lambda f: compare(f, "--runtimes", "torch", "--tolerance", "min_top1=1.5"),
        ("tolerance 'min_top1=1.5' is out of range", "min_top1 takes a number in [0, 1]"),
    ),
    "tolerance not finite": (
        lambda f: compare(f, "--runtimes", "torch", "--tolerance", "max_error=nan"),
        ("tolerance 'max_error=nan' is out of range",),
    ),
    "too few parity images": (
        lambda f: compare(f, "--runtimes", "torch", "--images", f.good_images(3)),
        ("holds 3 image(s); parity needs 8",),
    ),
    "calibration on the parity images": (
        lambda f: compare(f, "--runtimes", "torch", "--images", f.good_images(8), "--calib-data", f.good_images(8)),
        ("--calib-data and --images both name", "must not see the parity images"),
    ),
    "malformed shard": (lambda f: compare(f, "--runtimes", "torch", "--shard", "3/2"), ("malformed shard '3/2'",)),
    "missing optional dependency (runtime)": (
        lambda f: bench(f, "--runtime", "fault-needs-missing"),
        (f"pip install 'deploybench[{MISSING_EXTRA}]'",),
    ),
    "missing optional dependency (exporter)": (
        lambda f: ["export", TINY_NET, "--to", "fault-needs-missing"],
        (f"pip install 'deploybench[{MISSING_EXTRA}]'",),
    ),
    "unwritable output folder": (
        lambda f: compare(f, "--runtimes", "torch", "--out", UNWRITABLE),
        ("output folder /dev/null/sub is not writable", "another --out"),
    ),
    "unwritable resume folder": (
        lambda f: compare(f, "--runtimes", "torch", "--resume", UNWRITABLE),
        ("/dev/null/sub is not writable", "pass another --resume"),
    ),
    "unwritable cache folder (export)": (
        lambda f: ["export", TINY_NET, "--to", "ts", "--cache", UNWRITABLE],
        ("cache folder /dev/null/sub is not writable", "--cache DIR"),
    ),
    "unwritable cache folder (compare)": (
        lambda f: compare(f, "--runtimes", "torch,onnxruntime", "--out", f.out) + ["--cache", UNWRITABLE],  # last wins
        ("cache folder /dev/null/sub is not writable", "--cache DIR"),
    ),
    "results from another schema version (report)": (
        lambda f: ["report", f.results(SCHEMA_999) + "/results.json"],
        ("schema version 999 is not supported", "re-run"),
    ),
    "results from another schema version (resume)": (
        lambda f: compare(f, "--runtimes", "torch", "--resume", f.results(SCHEMA_999)),
        ("schema version 999 is not supported",),
    ),
    "malformed results file": (
        lambda f: ["report", f.results('{"schema_version": 1, "rows": [') + "/results.json"],
        ("not a results JSON document", "compare --out"),
    ),
    "JSON from another tool (report, #16.11)": (
        lambda f: ["report", f.results('{"benchmarks": [{"name": "resnet", "ms": 3.1}]}') + "/results.json"],
        ("not a deploybench results file", "compare --out"),
    ),
    "JSON list (report)": (
        lambda f: ["report", f.results("[1, 2, 3]") + "/results.json"],
        ("not a deploybench results file",),
    ),
    "row with a status deploybench never writes (report, #16.11)": (
        lambda f: [
            "report",
            f.results(
                json.dumps(
                    {
                        "schema_version": 1,
                        "created": "2020-01-01T00:00:00+00:00",
                        "rows": [
                            {
                                "model": "m",
                                "format": "onnx",
                                "runtime": "onnxruntime",
                                "device": "cpu",
                                "precision": "fp32",
                                "batch": 1,
                                "status": "great",
                            }
                        ],
                    }
                )
            )
            + "/results.json",
        ],
        (
            "row m|onnx|onnxruntime|cpu|fp32|1 has status 'great', which deploybench never writes",
            "valid: ok, error, oom, timeout, crashed, export-failed",
        ),
    ),
    "row without its cell (report)": (
        lambda f: [
            "report",
            f.results(
                json.dumps(
                    {
                        "schema_version": 1,
                        "created": "2020-01-01T00:00:00+00:00",
                        "rows": [{"model": "m", "batch": "8"}],
                    }
                )
            )
            + "/results.json",
        ],
        ("a row has format None",),
    ),
    "missing results file": (
        lambda f: ["report", f.missing("results.json")],
        ("cannot read results file", "check the path"),
    ),
}


@pytest.fixture
def faults() -> Iterator[None]:
    with faulty_plugins.installed():
        yield


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(code: int, err: str) -> str:
    """The single ``error:`` line of a failed command (progress lines may come before it)."""
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert err.rstrip().splitlines()[-1] == errors[0], "the error is the last thing printed"
    return errors[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_one_line_that_says_what_to_do(
    case: str, tmp_path: Path, faults: None, capsys: pytest.CaptureFixture
) -> None:
    build, needles = CASES[case]
    files = Files(tmp_path)
    argv = build(files)
    before = snapshot(tmp_path)
    line = error_line(main(argv), capsys.readouterr().err)
    for needle in needles:
        assert needle in line
    # Nothing written half: no results, no cache entry; the inputs themselves are untouched.
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [k for k in after if k not in before and not k.startswith("cache/.locks")], after.keys()


@pytest.mark.parametrize(
    "names",
    [
        ("--runtimes", "torch,onnxrt"),
        ("--formats", "onx"),
        ("--precisions", "int4"),
        ("--threads", "-2"),
        ("--models", ","),
    ],
)
def test_names_are_validated_before_any_model_is_resolved(
    names: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A typo costs a second, not a model build (#16.10): resolve must never be reached."""

    def must_not_resolve(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was resolved before the names were checked")

    monkeypatch.setattr("deploybench.sweep.resolve", must_not_resolve)
    monkeypatch.setattr("deploybench.models.resolve", must_not_resolve)
    argv = [
        "compare",
        "--models",
        "test_efficientnet",
        "--runtimes",
        "torch",
        *names,
        "--quick",
        "--cache",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
    ]
    line = error_line(main(argv), capsys.readouterr().err)
    assert names[1].split(",")[-1] in line or "no model" in line


def test_threads_above_the_logical_cores_warn_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cores = os.cpu_count() or 1
    code = main(compare(Files(tmp_path), "--runtimes", "torch", "--threads", str(cores + 1)))
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [line for line in err.splitlines() if f"--threads {cores + 1} is more than the {cores} logical" in line]
    assert len(warnings) == 1 and warnings[0].strip().startswith("warning:") and f"--threads {cores} or fewer" in err


@pytest.mark.parametrize("argv", [["info", "test_resnett"], ["report", "/nonexistent/results.json"]])
def test_verbose_adds_the_traceback(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["-v", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("error:")


def hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make the registries believe ``module`` is not installed."""
    real = registry.check_requirements

    def check(requires: tuple[str, ...], extra: str | None) -> Availability:
        if module in requires:
            return Availability(
                False,
                f"'{module}' is not installed (pip install 'deploybench[{extra}]')"
                if extra
                else f"'{module}' is not installed (pip install {module})",
            )
        return real(requires, extra)

    monkeypatch.setattr(registry, "check_requirements", check)


@pytest.mark.parametrize(
    "module, argv, extra",
    [
        ("onnxruntime", ["bench", TINY_NET, "--runtime", "onnxruntime", "--quick", "--no-isolate"], "onnx"),
        ("onnx", ["export", TINY_NET, "--to", "onnx"], "onnx"),
        ("openvino", ["export", TINY_NET, "--to", "openvino"], "openvino"),
        ("ultralytics", ["info", "yolov8n"], "yolo"),
    ],
)
def test_a_missing_backend_names_the_extra_to_install(
    module: str,
    argv: list[str],
    extra: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    hide(monkeypatch, module)
    line = error_line(main([*argv, "--cache", str(tmp_path)] if argv[0] != "info" else argv), capsys.readouterr().err)
    assert f"'{module}'" in line and f"pip install 'deploybench[{extra}]'" in line
    assert not any(tmp_path.glob("*/manifest.json"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through folder permissions; /dev/null/sub covers root")
def test_a_read_only_output_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        argv = compare(Files(tmp_path), "--runtimes", "torch", "--out", str(locked / "out"))
        line = error_line(main(argv), capsys.readouterr().err)
    finally:
        locked.chmod(0o700)
    assert "is not writable" in line and "Permission denied" in line


# -- corrupt artifacts loaded directly (the cache rebuilds them; see test_cache_integrity) --

CORRUPTIBLE = {"torchscript": "torchscript", "onnx": "onnxruntime", "openvino": "openvino"}


@pytest.fixture(scope="module")
def clean_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    cache = ArtifactCache(tmp_path_factory.mktemp("bad-input-cache"))
    made = {}
    for fmt, runtime in CORRUPTIBLE.items():
        if registry.exporters.availability(fmt).ok and registry.runtimes.availability(runtime).ok:
            made[fmt], _ = cache.get_or_export(registry.exporters.get(fmt)(), resolve(TINY_NET), ExportOptions())
    return made


@pytest.mark.parametrize("fmt", list(CORRUPTIBLE))
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_artifact_file_fails_to_load_with_advice(
    fmt: str, damage: str, tmp_path: Path, clean_artifacts: dict[str, Artifact]
) -> None:
    if fmt not in clean_artifacts:
        pytest.skip(f"{fmt} or its runtime is not installed here")
    folder = tmp_path / fmt
    shutil.copytree(clean_artifacts[fmt].path, folder)
    artifact = Artifact.load(folder)
    data = artifact.file.read_bytes()
    artifact.file.write_bytes(b"\x00garbage\xff" * 64 if damage == "garbage" else data[: len(data) // 2])
    assert artifact.integrity_problem() is not None  # what the cache checks before trusting it
    runtime = registry.runtimes.get(CORRUPTIBLE[fmt])(RuntimeOptions(threads=1))
    with pytest.raises(RuntimeLoadError) as caught:
        runtime.load(artifact)
    message = str(caught.value)
    assert "\n" not in message
    assert artifact.main_file in message and "export it again" in message


def test_a_results_file_missing_fields_is_a_one_line_error(capsys, tmp_path) -> None:
    from deploybench.cli import main

    path = tmp_path / "partial.json"
    path.write_text('{"schema_version": 1, "rows": [{"model": "m"}]}')
    code = main(["report", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "complete results document" in err
