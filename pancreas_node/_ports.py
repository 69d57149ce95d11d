"""Listening ports: say which address, which port and which setting when one cannot be bound.

A bare ``[Errno 98] Address already in use`` names neither the port nor what to change; the
node, the demo and the Orthanc launcher turn it into one line that does.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from dicom_node import NodeMetrics
from dicom_node.node import Node
from dicom_node.worker import JobRunner
from inference import LandmarkStore, estimate_series_phase
from pancreas_contracts import Settings
from pancreas_node._cli_errors import CliError

__all__ = ["bind_problem", "check_can_listen", "listen_failure", "started_node"]

#: What each bind errno means to someone who chose the address and the port.
_BIND_PROBLEMS = {
    errno.EADDRINUSE: "the port is already in use (another node, Orthanc or DICOM server?)",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's",
}


def bind_problem(exc: OSError) -> str | None:
    """What a failed ``bind`` means, or ``None`` when ``exc`` is not a bind failure."""
    return _BIND_PROBLEMS.get(exc.errno) if exc.errno is not None else None


def listen_failure(
    exc: OSError, what: str, address: str, port: int, change: str
) -> CliError | None:
    """The one-line error for a server that could not bind ``address:port``.

    Parameters
    ----------
    exc
        The error from ``bind`` (or from a server that binds when it starts).
    what
        The server, e.g. ``"the node's DICOM port"``.
    address, port
        Where it tried to listen.
    change
        The setting or option that picks another port, e.g. ``"--port or PANCREAS_AI_PORT"``.

    Returns
    -------
    CliError or None
        ``None`` when ``exc`` is some other ``OSError`` (the caller re-raises it).
    """
    problem = bind_problem(exc)
    if problem is None:
        return None
    return CliError(f"cannot listen on {what} {address}:{port}: {problem}; {change}")


def check_can_listen(what: str, address: str, port: int, change: str) -> None:
    """Fail early, with the port and the setting named, if ``address:port`` cannot be bound.

    ``SO_REUSEADDR`` as the servers themselves set it (pynetdicom, Orthanc), so a connection
    still in ``TIME_WAIT`` does not count as in use. Another process may still take the port
    between this check and the server's own bind; the servers' errors are translated too.

    Raises
    ------
    CliError
        If the port is in use, privileged or the address is not local.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            failure = listen_failure(exc, what, address, port, change)
            if failure is None:
                raise
            raise failure from exc


@contextmanager
def started_node(
    settings: Settings,
    runner: JobRunner | None,
    change: str,
    metrics: NodeMetrics | None = None,
) -> Iterator[Node]:
    """The node, started, and stopped on leaving; a port it cannot bind is named.

    Parameters
    ----------
    settings, runner
        As for :class:`dicom_node.node.Node` (the contrast phase comes from
        :func:`inference.estimate_series_phase`, which keeps the landmarks it finds in
        ``settings.landmarks_dir`` for the worker's localiser).
    change
        The setting or option that picks another port, for the error message.
    metrics
        The node's metrics (issue 27), shared with the runner; default: the node's own.

    Raises
    ------
    CliError
        If the SCP cannot bind ``settings.bind_address:settings.port``.
    """
    store = LandmarkStore(settings.landmarks_dir)
    node = Node(settings, runner, partial(estimate_series_phase, store=store), metrics)
    try:
        node.start()
    except OSError as exc:
        node.stop()  # the database and anything started before the SCP
        failure = listen_failure(
            exc, "the node's DICOM port", settings.bind_address, settings.port, change
        )
        if failure is None:
            raise
        raise failure from exc
    try:
        yield node
    finally:
        node.stop()
