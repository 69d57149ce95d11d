"""``pancreas-node demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pancreas_node._demo import DemoError, DemoOptions, run_demo
from pancreas_node.orthanc_server import OrthancError

__all__ = ["demo_command"]


def demo_command(
    workdir: Annotated[
        Path, typer.Option(help="Folder for the phantom, Orthanc storage and logs.")
    ] = Path(".demo"),
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the servers running until Ctrl-C.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Phantom seed.")] = 7,
    http_port: Annotated[int, typer.Option(help="Orthanc HTTP port.")] = 8042,
    dicom_port: Annotated[int, typer.Option(help="Orthanc DICOM port.")] = 4242,
    node_port: Annotated[int, typer.Option(help="The node's DICOM port.")] = 11112,
) -> None:
    """Run the main job end to end on a phantom study (investigational, not for clinical use)."""
    options = DemoOptions(
        work_dir=workdir,
        keep=keep,
        seed=seed,
        http_port=http_port,
        dicom_port=dicom_port,
        node_port=node_port,
    )
    try:
        run_demo(options, Console())
    except (DemoError, OrthancError) as exc:
        raise ValueError(str(exc)) from exc
