"""``deploybench cache list|clear``."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from deploybench.cli.options import cache_option


@click.group("cache")
def cache_group() -> None:
    """Inspect or empty the artifact cache."""


@cache_group.command("list")
@cache_option
def cache_list(cache_dir: str | None) -> None:
    """Every cached artifact with its size, options and age."""
    from tabulate import tabulate

    from deploybench.cache import ArtifactCache

    cache = ArtifactCache(Path(cache_dir) if cache_dir else None)
    rows = [
        [
            a.manifest.get("model"),
            a.format,
            a.precision,
            a.device,
            f"{a.batch.min}:{a.batch.opt}:{a.batch.max}",
            f"{a.size_bytes() / 2**20:.2f}",
            a.manifest.get("export_seconds"),
            a.manifest.get("created"),
            a.file.parent.name,
        ]
        for a in cache.entries()
    ]
    click.echo(f"cache: {cache.root}")
    click.echo(
        tabulate(
            rows, headers=["model", "format", "precision", "device", "batch", "MB", "export s", "created", "folder"]
        )
    )
    records = [*cache.records_dir.glob("*.facts.json"), *cache.records_dir.glob("*.reference.npz")]
    if records:
        size = 0.0
        for record in records:
            with contextlib.suppress(FileNotFoundError):  # another sweep may be replacing it
                size += record.stat().st_size / 2**20
        where = cache.records_dir
        click.echo(f"model records (facts, parity references): {len(records)} files, {size:.2f} MB in {where}")


@cache_group.command("clear")
@cache_option
def cache_clear(cache_dir: str | None) -> None:
    """Remove every cached artifact, with the kept model facts and parity references."""
    from deploybench.cache import ArtifactCache

    cache = ArtifactCache(Path(cache_dir) if cache_dir else None)
    click.echo(f"removed {cache.clear()} artifacts from {cache.root}")


COMMANDS = [cache_group]
