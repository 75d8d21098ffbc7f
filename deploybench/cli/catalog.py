"""Commands that describe: models, info, list, env."""

from __future__ import annotations

import json
from typing import Any

import click

from deploybench.cli.options import weights_options


@click.command("models")
@click.argument("pattern", required=False)
def models_command(pattern: str | None) -> None:
    """List model aliases and, with a PATTERN (glob), matching library models."""
    from tabulate import tabulate

    from deploybench.models import list_models

    rows = list_models(pattern)
    click.echo(
        tabulate([[r["name"], r["resolves_to"], r["source"]] for r in rows], headers=["name", "resolves to", "source"])
    )


@click.command("info")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@weights_options
def info_command(model: str, as_json: bool, weights: dict[str, Any]) -> None:
    """Describe MODEL: source, task, input, outputs, parameters, FLOPs and MACs (counted)."""
    from deploybench.describe import describe_model
    from deploybench.streams import stdout_to_stderr

    with stdout_to_stderr():  # building the model makes some libraries print (Ultralytics' summary)
        data = describe_model(model, **weights)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key == "inputs":  # one line per input: an ONNX file may take several
            for index, spec in enumerate(value):
                click.echo(f"{'input' if len(value) == 1 else f'input {index}':>16}: {spec}")
            continue
        if value is None and key in ("parameters", "flops", "macs"):
            value = "not counted (no PyTorch module)"
        elif key == "parameters":
            value = f"{value:,}"
        elif key == "flops":
            value = f"{value / 1e9:.3f} GFLOPs ({value:,}; 2 per multiply-accumulate)"
        elif key == "macs":
            value = f"{value / 1e9:.3f} GMACs (the figure papers and model zoos quote)"
        click.echo(f"{key:>16}: {value}")


@click.command("list")
@click.argument("kind", type=click.Choice(["exporters", "runtimes", "sources"]))
def list_command(kind: str) -> None:
    """Show each plugin of KIND, whether it is available here and why not."""
    from tabulate import tabulate

    from deploybench import registry
    from deploybench.errors import DeployBenchError

    reg = {"exporters": registry.exporters, "runtimes": registry.runtimes, "sources": registry.sources}[kind]
    rows = []
    for name in reg.names():
        try:
            cls = reg.get(name)
        except DeployBenchError as exc:  # a broken plugin is listed, not fatal
            rows.append([name, "", "", "", "", f"no: {exc}"])
            continue
        available = reg.availability(name)
        detail = ", ".join(getattr(cls, "formats", ())) if kind == "runtimes" else getattr(cls, "suffix", "")
        rows.append(
            [
                name,
                ", ".join(getattr(cls, "aliases", ())),
                detail,
                ", ".join(getattr(cls, "devices", ())),
                ", ".join(getattr(cls, "precisions", ())),
                "yes" if available.ok else f"no: {available.reason}",
            ]
        )
    headers = ["name", "aliases", "formats" if kind == "runtimes" else "suffix", "devices", "precisions", "available"]
    click.echo(tabulate(rows, headers=headers))


@click.command("env")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def env_command(as_json: bool) -> None:
    """The machine fingerprint every result carries."""
    from deploybench.env import fingerprint

    data = fingerprint()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    cpu = data["cpu"]
    click.echo(f"os:        {data['os']}  python {data['python']}")
    click.echo(
        f"cpu:       {cpu['model']} ({cpu['arch']}), "
        f"{cpu['usable_cores']} usable / {cpu['logical_cores']} logical cores"
    )
    click.echo(f"features:  {', '.join(k for k, v in cpu['features'].items() if v) or 'none of note'}")
    click.echo(f"memory:    {data['memory_mb']:,} MB")
    for gpu in data["gpus"] or [None]:
        if gpu is None:
            click.echo("gpus:      none visible to NVML")
        else:
            click.echo(
                f"gpu {gpu['index']}:     {gpu['name']} (sm {gpu['compute_capability']}), {gpu['memory_mb']:,} MB, "
                f"driver {gpu['driver']}, CUDA {gpu['cuda_driver']}, "
                f"SM clock {gpu['sm_clock_mhz']}/{gpu['sm_clock_max_mhz']} MHz"
            )
    click.echo("libraries: " + ", ".join(f"{k} {v}" for k, v in data["libraries"].items() if v))
    missing = [k for k, v in data["libraries"].items() if not v]
    if missing:
        click.echo("missing:   " + ", ".join(missing))


COMMANDS = [models_command, info_command, list_command, env_command]
