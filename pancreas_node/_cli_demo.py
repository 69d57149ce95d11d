"""``pancreas-node demo``.

SIGTERM (``kill``, a service manager, ``docker stop``) stops the demo as Ctrl-C does: the
handler raises :class:`KeyboardInterrupt` in the main thread, so the node and Orthanc are
stopped by the same ``finally`` blocks; with ``--keep`` the demo then ends normally (exit 0),
during the run it is aborted (exit 130). Only the first SIGTERM interrupts: later ones, sent
while Orthanc and the node are being stopped, cannot cut the shutdown short.

The node's log (the loggers of the node's rooms; they log no patient identifiers) goes to
``<workdir>/node.log``, as ``pancreas-node serve`` keeps ``<data>/logs/node.log``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from pancreas_node._demo import DemoError, DemoOptions, check_ports, run_demo
from pancreas_node.orthanc_server import OrthancError

__all__ = ["demo_command"]

#: The loggers of the rooms the demo runs; pynetdicom's own are left out (its INFO and DEBUG
#: lines can carry identifiers from the data sets).
_NODE_LOGGERS = ("dicom_node", "db", "orthanc_plugin", "inference", "pancreas_node")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def _stop_signals_as_ctrl_c() -> Iterator[None]:
    """While inside, SIGINT and the first SIGTERM raise KeyboardInterrupt in the main thread.

    SIGINT too, because a shell starts a background job (``make demo KEEP=1 &``, a CI step
    run with ``&``) with SIGINT ignored, and Python then installs no KeyboardInterrupt
    handler: a kept demo would never stop on Ctrl-C or ``kill -INT``.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


@contextmanager
def _node_log(path: Path) -> Iterator[None]:
    """Write the node's loggers (INFO and above) to ``path`` while inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in _NODE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()


def demo_command(
    workdir: Annotated[
        Path, typer.Option(help="Folder for the phantom, Orthanc storage and logs.")
    ] = Path(".demo"),
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the servers running until Ctrl-C or SIGTERM.")
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
        # A taken port fails before anything is written (not even the log's folder).
        check_ports(options)
        with _stop_signals_as_ctrl_c(), _node_log(workdir / "node.log"):
            run_demo(options, Console())
    except (DemoError, OrthancError) as exc:
        raise ValueError(str(exc)) from exc
