"""The regression gate: the statistical rule on controlled samples, then the CLI on real stored runs."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from pathlib import Path

import helpers
import pytest

from deploybench.cli import main
from deploybench.comparability import IncompatibleBaselineError, incompatibilities
from deploybench.errors import UsageError
from deploybench.harness import MeasurePolicy, Stats
from deploybench.regress import (
    FAILING,
    IMPROVED,
    MISSING,
    NEW,
    REGRESSED,
    UNCHANGED,
    NoCommonCellsError,
    Thresholds,
    format_percent,
    gate,
    parse_fraction,
    robust_spread_ms,
)
from deploybench.report.delta import COLUMNS, render_markdown
from deploybench.results import Results, Row

ENV = {
    "hostname": "box",
    "cpu": {"model": "Test CPU"},
    "gpus": [],
    "libraries": {"torch": "2.5.0", "onnxruntime": "1.20.0", "openvino": None, "tensorrt": None},
}


def make_row(
    median: float = 2.0,
    cv: float = 0.02,
    seed: int = 0,
    runtime: str = "onnxruntime",
    batch: int = 1,
    parity: str | None = "pass",
    status: str = "ok",
    rss: float = 500.0,
    n: int = 200,
) -> Row:
    """A row whose samples are drawn from a normal distribution around ``median``."""
    row = Row(
        model="test_resnet",
        format="onnx",
        runtime=runtime,
        device="cpu",
        precision="fp32",
        batch=batch,
        status=status,
        parity=helpers.parity(parity) if parity else None,
        memory=helpers.memory(rss),
    )
    if status == "ok":
        rng = random.Random(seed)
        row.samples_ms = [max(1e-3, rng.gauss(median, median * cv)) for _ in range(n)]
        with_samples(row, row.samples_ms)
    else:
        row.message = "worker died with SIGSEGV"
    return row


def with_samples(row: Row, samples: list[float]) -> Row:
    """Set the samples and everything derived from them, as the harness would."""
    stats = Stats.from_samples(samples)
    row.samples_ms, row.stats = list(samples), stats
    row.ms_per_image = stats.median / row.batch
    row.throughput = row.batch * 1000 / stats.mean
    return row


def results(*rows: Row, env: dict | None = None, **config: object) -> Results:
    return Results(config={"models": ["test_resnet"], **config}, environment=env or ENV, rows=list(rows))


def verdicts(report) -> dict[str, str]:
    return {d.key: d.verdict for d in report.deltas}


@pytest.mark.parametrize(
    "text, value", [("5%", 0.05), ("0.05", 0.05), (" 12.5% ", 0.125), ("0", 0.0), ("1", 1.0), ("500%", 5.0)]
)
def test_percent_arguments_accept_percent_or_fraction(text: str, value: float) -> None:
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text, why",
    [
        ("five", "malformed"),
        ("%", "malformed"),
        ("-3%", "must not be negative"),
        ("5", "would be 500%; did you mean 5%"),
        ("1.5", "did you mean 1.5%"),
        ("nan", "not a finite number"),
        ("inf%", "not a finite number"),
    ],
)
def test_malformed_percent_is_a_usage_error(text: str, why: str) -> None:
    with pytest.raises(UsageError, match="--max-slowdown") as info:
        parse_fraction(text, "--max-slowdown")
    assert why in str(info.value)


@pytest.mark.parametrize(
    "value, signed, text",
    [(0.05, False, "5%"), (0.125, False, "12.5%"), (0.1, True, "+10%"), (-0.034, True, "-3.4%"), (5.0, False, "500%")],
)
def test_format_percent(value: float, signed: bool, text: str) -> None:
    assert format_percent(value, signed=signed) == text


def test_same_distribution_is_not_a_regression() -> None:
    base = results(*(make_row(seed=s, batch=b) for s, b in ((1, 1), (2, 8))))
    now = results(*(make_row(seed=s, batch=b) for s, b in ((11, 1), (12, 8))))
    report = gate(base, now)
    assert set(verdicts(report).values()) == {UNCHANGED}
    assert report.passed


def test_planted_slowdown_on_a_quiet_cell_regresses() -> None:
    report = gate(results(make_row(seed=1)), results(make_row(median=2.6, seed=2)))
    (delta,) = report.deltas
    assert delta.verdict == REGRESSED and not report.passed
    assert delta.change == pytest.approx(0.3, abs=0.02)
    assert "slower by" in delta.reasons[0]


def test_noise_decides_between_slowdown_and_jitter() -> None:
    """The same 12 % shift fails a quiet cell but not one whose samples spread by 15 %."""
    quiet = gate(results(make_row(cv=0.01, seed=1)), results(make_row(median=2.24, cv=0.01, seed=2)))
    noisy = gate(results(make_row(cv=0.15, seed=1)), results(make_row(median=2.24, cv=0.15, seed=2)))
    assert quiet.deltas[0].verdict == REGRESSED
    assert noisy.deltas[0].verdict == UNCHANGED
    assert noisy.deltas[0].noise > quiet.deltas[0].noise * 5


def test_max_slowdown_is_honoured() -> None:
    base, now = results(make_row(cv=0.005, seed=1)), results(make_row(median=2.16, cv=0.005, seed=2))
    assert gate(base, now, Thresholds(max_slowdown=0.05)).deltas[0].verdict == REGRESSED
    assert gate(base, now, Thresholds(max_slowdown=0.10)).deltas[0].verdict == UNCHANGED


def test_a_clear_speed_up_is_an_improvement_not_a_failure() -> None:
    report = gate(results(make_row(seed=1)), results(make_row(median=1.5, seed=2)))
    assert report.deltas[0].verdict == IMPROVED and report.passed


def test_parity_regression_fails_even_when_faster() -> None:
    report = gate(results(make_row(seed=1)), results(make_row(median=1.0, seed=2, parity="fail")))
    delta = report.deltas[0]
    assert delta.verdict == REGRESSED
    assert delta.reasons == ["parity pass -> fail"]


def test_parity_failing_in_both_is_not_a_new_regression() -> None:
    report = gate(results(make_row(seed=1, parity="fail")), results(make_row(seed=2, parity="fail")))
    assert report.passed


def test_status_regressions_and_recoveries() -> None:
    base = results(make_row(seed=1, batch=1), make_row(batch=2, status="crashed"), make_row(batch=4, status="oom"))
    now = results(make_row(batch=1, status="crashed"), make_row(batch=2, status="error"), make_row(seed=3, batch=4))
    got = {d.row.batch: d for d in gate(base, now).deltas}
    assert got[1].verdict == REGRESSED and got[1].reasons[0].startswith("status ok -> crashed")
    assert got[2].verdict == FAILING
    assert got[4].verdict == IMPROVED


def test_memory_growth_beyond_the_limit_regresses() -> None:
    base = results(make_row(seed=1, batch=1, rss=500), make_row(seed=1, batch=2, rss=500))
    now = results(make_row(seed=2, batch=1, rss=600), make_row(seed=2, batch=2, rss=520))
    got = {d.row.batch: d for d in gate(base, now, Thresholds(max_memory_growth=0.10)).deltas}
    assert got[1].verdict == REGRESSED and "host memory +20% (limit 10%)" in got[1].reasons[0]
    assert got[2].verdict == UNCHANGED


def test_device_memory_is_compared_only_between_figures_of_one_kind() -> None:
    # A whole-GPU figure (NVML could not see the process) holds every process on the GPU.
    from dataclasses import replace

    from deploybench.memory import NVML_DEVICE, NVML_WHOLE_GPU

    def on_gpu(row: Row, mb: float, source: str) -> Row:
        row.memory = replace(row.memory, peak_device_mb=mb, device_source=f"{source} every 50 ms")
        return row

    base = results(
        on_gpu(make_row(seed=1, batch=1), 1000, NVML_DEVICE), on_gpu(make_row(seed=1, batch=2), 1000, NVML_DEVICE)
    )
    now = results(
        on_gpu(make_row(seed=2, batch=1), 1500, NVML_DEVICE), on_gpu(make_row(seed=2, batch=2), 1500, NVML_WHOLE_GPU)
    )
    got = {d.row.batch: d for d in gate(base, now, Thresholds(max_memory_growth=0.10)).deltas}
    assert got[1].verdict == REGRESSED and "device memory +50%" in got[1].reasons[0]
    assert got[2].device_memory_growth is None and got[2].verdict == UNCHANGED


def test_markdown_table_escapes_pipes_in_messages() -> None:
    crashed = make_row(status="crashed")
    crashed.message = "ValueError: shape (1|3) | got (2|3)"
    report = gate(
        results(make_row(seed=1), make_row(seed=1, batch=8)), results(crashed, make_row(seed=2, batch=8, median=1.0))
    )
    markdown = render_markdown(report)
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table) == 4  # header, rule, two cells
    assert {len(re.findall(r"(?<!\\)\|", line)) for line in table} == {len(COLUMNS) + 1}
    assert "shape (1\\|3) \\| got (2\\|3)" in markdown
    assert "limits: slowdown 5% and more than 2x" in markdown and "memory growth 10%;" in markdown


def test_missing_and_new_cells_are_reported() -> None:
    base = results(make_row(seed=1, batch=1), make_row(seed=1, batch=8))
    now = results(make_row(seed=2, batch=1), make_row(seed=2, batch=32))
    report = gate(base, now)
    assert sorted(d.verdict for d in report.deltas) == sorted([UNCHANGED, MISSING, NEW])
    assert report.passed
    assert not gate(base, now, Thresholds(fail_on_missing=True)).passed
    assert report.summary() == "PASS: 1 ok, 1 missing, 1 new (1 cells compared)"  # only the matched cell counts


def other_model(row: Row) -> Row:
    return replace(row, model="regnety_016")


def test_runs_without_a_cell_in_common_are_an_error_not_a_pass() -> None:
    base = results(make_row(seed=1, batch=1), make_row(seed=1, batch=8))
    now = results(*(other_model(make_row(seed=2, batch=b)) for b in (1, 8)))
    with pytest.raises(NoCommonCellsError, match="no cell in common") as caught:
        gate(base, now)
    assert caught.value.exit_code == 2
    assert "baseline: 2 cells of test_resnet; current: 2 cells of regnety_016" in str(caught.value)


def test_regress_cli_refuses_two_runs_of_different_models(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base, now = tmp_path / "resnet34.json", tmp_path / "regnety_016.json"
    results(make_row(seed=1)).save(base)
    results(other_model(make_row(seed=2))).save(now)
    code, out = run_cli(capsys, str(base), str(now))
    assert code == 2 and "PASS" not in out
    assert (
        out.strip()
        .splitlines()[-1]
        .startswith("error: nothing to compare: the baseline and the current run have no cell in common")
    )


def test_other_hardware_or_libraries_are_refused_with_the_fields_named() -> None:
    other = dict(ENV, cpu={"model": "Other CPU"}, libraries=dict(ENV["libraries"], torch="2.6.0"))
    assert incompatibilities(results(), results()) == []
    with pytest.raises(IncompatibleBaselineError) as info:
        gate(results(make_row(seed=1)), results(make_row(seed=2), env=other))
    message = str(info.value)
    assert "cpu.model: 'Test CPU' vs 'Other CPU'" in message and "libraries.torch" in message
    assert "--force" in message and "onnxruntime" not in message
    forced = gate(results(make_row(seed=1)), results(make_row(seed=2), env=other), force=True)
    assert len(forced.notes) == 2


def differing(old: dict, new: dict, old_config: dict | None = None, new_config: dict | None = None) -> list[str]:
    """The names of the fields that make two documents incomparable."""
    return [
        d.split(":")[0]
        for d in incompatibilities(results(env=old, **(old_config or {})), results(env=new, **(new_config or {})))
    ]


def test_gpu_names_and_driver_are_compared() -> None:
    a100 = dict(ENV, gpus=[{"name": "NVIDIA A100-SXM4-80GB", "driver": "550.54", "cuda_driver": "12.4"}])
    h100 = dict(ENV, gpus=[{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54", "cuda_driver": "12.4"}])
    assert differing(a100, h100) == ["gpus"]
    upgraded = dict(ENV, gpus=[{"name": "NVIDIA A100-SXM4-80GB", "driver": "560.28", "cuda_driver": "12.6"}])
    assert differing(a100, upgraded) == ["gpus.driver", "gpus.cuda_driver"]


def test_timm_and_torchvision_versions_are_compared() -> None:
    old = dict(ENV, libraries=dict(ENV["libraries"], timm="1.0.9", torchvision="0.20.0"))
    new = dict(ENV, libraries=dict(ENV["libraries"], timm="1.0.11", torchvision="0.21.0"))
    assert differing(old, new) == ["libraries.torchvision", "libraries.timm"]


def test_measurement_policy_and_threads_are_compared_where_both_record_them() -> None:
    full = {"quick": False, "min_iters": 50, "min_seconds": 3.0, "warmup_iters": 10, "warmup_seconds": 1.0}
    quick = {"quick": True, "min_iters": 5, "min_seconds": 0.2, "warmup_iters": 2, "warmup_seconds": 0.0}
    assert differing(ENV, ENV, {"policy": full, "threads": None}, {"policy": quick, "threads": None}) == [
        "config.policy"
    ]
    assert differing(ENV, ENV, {"policy": full, "threads": 4}, {"policy": full, "threads": 8}) == ["config.threads"]
    assert differing(ENV, ENV, {"threads": 4}, {"policy": quick, "threads": 4}) == []  # an older document: no policy
    with pytest.raises(IncompatibleBaselineError, match="measurement policy"):
        gate(results(make_row(seed=1), policy=full), results(make_row(seed=2), policy=quick))


def test_robust_spread_ignores_a_few_outliers() -> None:
    row = make_row(cv=0.02, seed=5, n=400)
    spiked = with_samples(replace(row), row.samples_ms[:-4] + [40.0] * 4)  # four 20x stalls
    assert spiked.stats.std > 10 * 0.04
    assert robust_spread_ms(spiked) == pytest.approx(0.04, rel=0.2)


# The CLI on real stored runs --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real quick sweep of the tiny model (torch and onnxruntime), stored as a results file."""
    from deploybench.cache import ArtifactCache
    from deploybench.env import fingerprint
    from deploybench.sweep import Sweep, SweepConfig

    folder = tmp_path_factory.mktemp("regress")
    config = SweepConfig(
        models=("test_resnet",),
        runtimes=("torch", "onnxruntime"),
        precisions=("fp32",),
        batches=(1,),
        policy=replace(MeasurePolicy.quick(), min_iters=30),
        isolate=False,
    )
    done = Sweep(config, ArtifactCache(folder / "cache"), Results(environment=fingerprint()), work_dir=folder).run()
    assert [r.status for r in done.rows] == ["ok", "ok"], [r.message for r in done.rows]
    path = folder / "base.json"
    done.save(path)
    return path


def derived(base: Path, out: Path, change) -> Path:
    """A copy of the stored run with ``change(row)`` applied to every row."""
    document = Results.load(base)
    for row in document.rows:
        change(row)
    document.save(out)
    return out


def redraw(row: Row) -> None:
    """A second run of the same configuration: the samples drawn again from the same distribution."""
    rng = random.Random(str(row.key))
    with_samples(row, rng.choices(row.samples_ms, k=len(row.samples_ms)))


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(["regress", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_regress_cli_passes_a_second_run_of_the_same_configuration(
    stored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    again = derived(stored_run, tmp_path / "again.json", redraw)
    code, out = run_cli(capsys, str(stored_run), str(again), "--markdown", str(tmp_path / "verdict.md"))
    assert code == 0, out
    assert "PASS: 2 ok" in out
    assert (tmp_path / "verdict.md").read_text().startswith("## Regression check: passed")


def test_regress_cli_flags_a_planted_slowdown(stored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """onnxruntime made slower by well over its own measured spread (at least 50 %) fails the gate."""

    def slow_onnxruntime(row: Row) -> None:
        if row.runtime == "onnxruntime":
            factor = 1 + max(0.5, 4 * robust_spread_ms(row) / row.stats.median)
            with_samples(row, [s * factor for s in row.samples_ms])
        else:
            redraw(row)

    slower = derived(stored_run, tmp_path / "slower.json", slow_onnxruntime)
    code, out = run_cli(capsys, str(stored_run), str(slower), "--max-slowdown", "5%")
    assert code == 1, out
    flagged = [line for line in out.splitlines() if "regressed" in line and "slower by" in line]
    assert len(flagged) == 1 and "onnxruntime" in flagged[0]
    assert "FAIL: 1 regressed, 1 ok" in out


def test_regress_cli_flags_a_planted_parity_failure(
    stored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def break_torch_parity(row: Row) -> None:
        redraw(row)
        if row.runtime == "torch":
            row.parity = replace(row.parity, verdict="fail")

    broken = derived(stored_run, tmp_path / "broken.json", break_torch_parity)
    code, out = run_cli(capsys, str(stored_run), str(broken), "--markdown", str(tmp_path / "verdict.md"))
    assert code == 1, out
    assert "parity pass -> fail" in out
    assert "FAILED (1 regressions)" in (tmp_path / "verdict.md").read_text()


def test_regress_cli_refuses_another_machine_unless_forced(
    stored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = Results.load(derived(stored_run, tmp_path / "other.json", redraw))
    other.environment = dict(other.environment, cpu=dict(other.environment["cpu"], model="Some Other CPU"))
    other.save(tmp_path / "other.json")
    code, out = run_cli(capsys, str(stored_run), str(tmp_path / "other.json"))
    assert code == 2 and "cpu.model" in out and "Some Other CPU" in out and "--force" in out
    code, out = run_cli(capsys, str(stored_run), str(tmp_path / "other.json"), "--force")
    assert code == 0 and "compared despite differing cpu.model" in out


def test_regress_cli_needs_two_files_without_history(stored_run: Path, capsys: pytest.CaptureFixture) -> None:
    code, out = run_cli(capsys, str(stored_run))
    assert code == 2 and "BASELINE.json CURRENT.json" in out


def test_regress_cli_refuses_a_bare_percentage(stored_run: Path, capsys: pytest.CaptureFixture) -> None:
    code, out = run_cli(capsys, str(stored_run), str(stored_run), "--max-slowdown", "5")
    assert code == 2 and "did you mean 5%?" in out
    code, out = run_cli(capsys, "--help")
    assert "[default: 5%]" in out and "[default: 10%]" in out
