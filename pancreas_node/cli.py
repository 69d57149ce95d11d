"""The ``pancreas-node`` command line.

Every sub-command lives in a private ``_cli_*`` module; this module only assembles them and
turns expected failures (bad input, unwritable paths) into a one-line error and a non-zero exit
status instead of a traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
from typer.exceptions import TyperException

from pancreas_node._cli_analyze import analyze_command
from pancreas_node._cli_board import board_app
from pancreas_node._cli_cohort import cohort_app
from pancreas_node._cli_db import db_app, registry_app
from pancreas_node._cli_demo import demo_command
from pancreas_node._cli_errors import CliError
from pancreas_node._cli_evaluate import evaluate_command
from pancreas_node._cli_export import export_cases_command
from pancreas_node._cli_import import import_command
from pancreas_node._cli_localiser import train_localiser_command
from pancreas_node._cli_phantom import phantom_command
from pancreas_node._cli_serve import rules_app, serve_command, status_command
from pancreas_node._cli_train import train_command
from pancreas_node._cli_volume import volume_app
from pancreas_node._cli_worker import worker_command

__all__ = ["CliError", "app", "main"]

app = typer.Typer(
    name="pancreas-node",
    help="PancreasAI Node: on-premise DICOM node for pancreatic-cancer AI. "
    "Investigational, not for clinical use.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("phantom")(phantom_command)
app.add_typer(volume_app, name="volume")
app.command("demo")(demo_command)
app.add_typer(db_app, name="db")
app.add_typer(registry_app, name="registry")
app.command("serve")(serve_command)
app.command("worker")(worker_command)
app.command("status")(status_command)
app.add_typer(rules_app, name="rules")
app.command("train")(train_command)
app.command("train-localiser")(train_localiser_command)
app.command("analyze")(analyze_command)
app.command("evaluate")(evaluate_command)
app.add_typer(board_app, name="board")
app.command("export-cases")(export_cases_command)
app.command("import")(import_command)
app.add_typer(cohort_app, name="cohort")


_DISTRIBUTION = "pancreas-ai-node"


def _installed_version() -> str:
    try:
        return version(_DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    # Eager: `pancreas-node --version` answers before typer looks for a command.
    if value:
        typer.echo(f"pancreas-node {_installed_version()}")
        raise typer.Exit(0)


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the installed version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    # The options of `pancreas-node` itself; the help text is the Typer's own.
    del show_version


@app.command("version")
def version_command() -> None:
    """Print the installed version."""
    typer.echo(_installed_version())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status.

    Expected errors become ``pancreas-node: error: <message>`` on stderr: usage errors exit 2,
    everything else 1.
    """
    try:
        result = app(args=argv, prog_name="pancreas-node", standalone_mode=False)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            # `pancreas-node` (or a group such as `pancreas-node db`) without a command: the
            # exception's message is the whole help page, which the one-line error below would
            # squash. Named, not imported: typer keeps the class in its private vendored click.
            typer.echo(exc.format_message().rstrip("\n"))
            return int(exc.exit_code)
        # Usage errors (exit 2) and other command-line errors (exit 1), typer's vendored click.
        typer.echo(f"pancreas-node: error: {_one_line(exc)}", err=True)
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("pancreas-node: aborted", err=True)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (CliError, ValueError, OSError) as exc:
        typer.echo(f"pancreas-node: error: {_one_line(exc)}", err=True)
        return 1
    return int(result) if isinstance(result, int) else 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
