"""``deploybench report RESULTS.json``: re-render a stored run."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("results_file", type=click.Path(dir_okay=False))
@click.option("--html", type=click.Path(dir_okay=False), help="Write a self-contained HTML report with plots.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Write the Markdown table.")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False), help="Write CSV.")
def report_command(results_file: str, html: str | None, markdown: str | None, csv_file: str | None) -> None:
    """Print the table of a results file and write other renderings of it."""
    from deploybench.files import write_text_atomic
    from deploybench.report.table import render_csv, render_markdown, render_table
    from deploybench.results import Results

    results = Results.load(Path(results_file))
    click.echo(render_table(results))
    renderers = {html: "html", markdown: "markdown", csv_file: "csv"}
    for path, kind in renderers.items():
        if not path:
            continue
        if kind == "html":
            from deploybench.report.html import render_html

            text = render_html(results)
        else:
            text = render_markdown(results) if kind == "markdown" else render_csv(results)
        write_text_atomic(Path(path), text)
        click.echo(f"wrote {path}", err=True)


COMMANDS = [report_command]
