"""Start and stop a private RabbitMQ broker (Debian's ``rabbitmq-server``) as the current user.

The distributed mode (issue 27) needs an AMQP broker. Like :mod:`pancreas_node.orthanc_server`
for Orthanc, this starts one from the Debian package on free ports with everything it writes
(database, logs, Erlang cookie, the node's own ``epmd``) in one folder, so the tests, the
benchmarks and a one-machine deployment never touch a broker the machine already runs, and
need no root (the package's ``/usr/sbin`` wrapper would switch to the ``rabbitmq`` user: the
scripts under ``/usr/lib/rabbitmq/bin`` run as whoever starts them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["RABBITMQ_SERVER", "RabbitMQConfig", "RabbitMQError", "RabbitMQServer", "amqp_answers"]

#: The package's start script that runs as the calling user (no switch to ``rabbitmq``).
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
#: What an AMQP 0-9-1 client sends first; a broker answers with a Connection.Start frame.
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME_METHOD = 1


class RabbitMQError(RuntimeError):
    """RabbitMQ could not be started."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RabbitMQConfig:
    """Where a private broker keeps its files and which loopback ports it takes.

    Parameters
    ----------
    work_dir
        Its database (``mnesia``), logs, configuration and Erlang cookie.
    amqp_port
        The AMQP port clients connect to.
    dist_port, epmd_port
        Erlang distribution: the node's own port and a private port mapper (``epmd``) that
        is stopped with the broker.
    node_name
        The Erlang node name (unique per broker on a machine).
    consumer_timeout_ms
        How long a worker may hold an unacknowledged message (one analysis); RabbitMQ's own
        default (30 min) would close the channel of a worker analysing a long series on a CPU.
    """

    work_dir: Path
    amqp_port: int = field(default_factory=_free_port)
    dist_port: int = field(default_factory=_free_port)
    epmd_port: int = field(default_factory=_free_port)
    node_name: str = field(default_factory=lambda: f"pancreas-{uuid.uuid4().hex[:10]}@localhost")
    consumer_timeout_ms: int = 4 * 3600 * 1000

    @property
    def url(self) -> str:
        """The broker URL for ``PANCREAS_AI_BROKER_URL`` (the default ``guest`` user, loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}//"

    def environment(self) -> dict[str, str]:
        """The ``RABBITMQ_*`` variables that confine the broker to ``work_dir`` and its ports."""
        base = self.work_dir.resolve()
        return {
            # Erlang keeps its cookie in $HOME/.erlang.cookie: this broker's own, in its folder.
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        }


class RabbitMQServer:
    """A private broker process: :meth:`start` waits until AMQP answers, :meth:`stop` ends it.

    Parameters
    ----------
    config
        Folder and ports.
    startup_timeout_s
        How long to wait for the AMQP port to answer.
    """

    def __init__(self, config: RabbitMQConfig, startup_timeout_s: float = 60.0) -> None:
        self.config = config
        self._timeout = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL (see :attr:`RabbitMQConfig.url`)."""
        return self.config.url

    @property
    def log_path(self) -> Path:
        """The start script's output (the broker's own logs are in ``work_dir/log``)."""
        return self.config.work_dir / "rabbitmq-server.out"

    def start(self) -> None:
        """Write the configuration, start the broker and wait until its AMQP port answers.

        Raises
        ------
        RabbitMQError
            If the package is missing, the process exits, or AMQP does not answer in time.
        """
        if not RABBITMQ_SERVER.is_file() or shutil.which("erl") is None:
            raise RabbitMQError(
                f"{RABBITMQ_SERVER} not found: install the Debian package 'rabbitmq-server' "
                "(`make system-deps`)"
            )
        work = self.config.work_dir
        work.mkdir(parents=True, exist_ok=True)
        (work / "enabled_plugins").write_text("[].\n", encoding="ascii")
        (work / "rabbitmq-env.conf").write_text("", encoding="ascii")
        (work / "rabbitmq.conf").write_text(
            f"consumer_timeout = {self.config.consumer_timeout_ms}\n", encoding="ascii"
        )
        env = {**os.environ, **self.config.environment()}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(RABBITMQ_SERVER)],
                cwd=work,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: the Erlang VM and helpers end with it
            )
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                self._stop_epmd()
                raise RabbitMQError(f"rabbitmq-server exited with {code}; see {self.log_path}")
            if amqp_answers("127.0.0.1", self.config.amqp_port):
                return
            time.sleep(0.25)
        self.stop()
        raise RabbitMQError(
            f"RabbitMQ did not answer on port {self.config.amqp_port} within "
            f"{self._timeout:.0f} s; see {self.log_path}"
        )

    def stop(self) -> None:
        """Stop the broker (SIGTERM: a clean shutdown; SIGKILL after 30 s) and its ``epmd``."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, 9)
                self._process.wait(timeout=10)
            self._process = None
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        # Erlang starts a port mapper as a daemon (outside the process group): ours, on its
        # private port, goes with the broker.
        epmd = shutil.which("epmd")
        if epmd is None:
            return
        subprocess.run(
            [epmd, "-port", str(self.config.epmd_port), "-kill"],
            env={**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"},
            capture_output=True,
            timeout=10,
            check=False,
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def amqp_answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether an AMQP 0-9-1 broker answers the protocol header at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(_AMQP_HEADER)
            first = sock.recv(1)
    except OSError:
        return False
    return first == bytes([_FRAME_METHOD])
