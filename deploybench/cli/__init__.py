"""The ``deploybench`` command: a thin layer over the Python API.

``main(argv) -> int`` is callable from tests. Errors deploybench raises on purpose print
one line and exit 2; the traceback appears only with ``-v``.
"""

from __future__ import annotations

import logging
import sys
import traceback

import click

from deploybench import __version__
from deploybench.errors import DeployBenchError

INTERRUPTED = "interrupted; finished rows are kept in results.json under --out; compare --resume DIR runs the rest"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(__version__, prog_name="deploybench")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Export vision models to every deployable format, run each in its native runtime,
    check parity with PyTorch, and measure latency, throughput and memory."""
    ctx.ensure_object(dict)["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _register_commands() -> None:
    # Imported here so that `deploybench --help` stays fast and backend-free.
    from deploybench.cli import bench, cache, catalog, compare, export, fleet, report, triage

    for module in (catalog, export, compare, bench, report, cache, fleet, triage):
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of exiting."""
    args = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        result = cli.main(args=args, prog_name="deploybench", standalone_mode=False)
        return int(result or 0)
    except DeployBenchError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        # Click turns Ctrl-C (and SIGTERM, which the sweep raises as one) into Abort.
        interrupted = isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt)
        click.echo(INTERRUPTED if interrupted else "aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
