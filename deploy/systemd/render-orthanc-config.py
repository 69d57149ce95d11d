"""Write Orthanc's configuration for a service: systemd, the compose stack or Kubernetes.

The one template is ``deploy/orthanc/orthanc.json.in``, filled by the launcher the demo and
the tests use (:class:`pancreas_node.orthanc_server.OrthancConfig`): DICOMweb, the Python
plugin with the PancreasAI plugin, and the OHIF viewer when it has been built. A service
differs from the demo in three ways, set here on the rendered JSON:

- the node may run on another host (``--node-host``; the demo's is always 127.0.0.1);
- in a container Orthanc must answer connections that are not loopback ones
  (``--remote-access``; the container's port is what a site exposes or not);
- the HTTP passwords are the site's, from ``ORTHANC_ADMIN_PASSWORD`` and
  ``ORTHANC_VIEWER_PASSWORD`` (environment, never the command line, which ``ps`` shows).

Ports and AE titles are the node's settings (``PANCREAS_AI_ORTHANC_HTTP_PORT``,
``PANCREAS_AI_ORTHANC_DICOM_PORT``, ``PANCREAS_AI_AE_TITLE``, ``PANCREAS_AI_PORT``, or
``--node-config``), so the node and Orthanc are configured from one place.

Run with the project's virtual environment's Python (the plugin's ``VirtualEnv`` is that
environment)::

    /opt/pancreas-ai/.venv/bin/python deploy/systemd/render-orthanc-config.py \\
        --out /run/pancreas-ai-orthanc/orthanc.json --work-dir /var/lib/pancreas-ai/orthanc
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pancreas_contracts.settings import load_settings
from pancreas_node.orthanc_server import OrthancConfig, PythonPluginConfig

_PASSWORD_VARIABLES = ("ORTHANC_ADMIN_PASSWORD", "ORTHANC_VIEWER_PASSWORD")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="orthanc.json to write")
    parser.add_argument(
        "--work-dir", type=Path, required=True, help="Orthanc's storage lies in WORK_DIR/storage"
    )
    parser.add_argument("--node-host", default="127.0.0.1", help="host of the node's SCP")
    parser.add_argument("--node-config", type=Path, default=None, help="the node's TOML file")
    parser.add_argument(
        "--viewer-dir", type=Path, default=None, help="built OHIF viewer, served at /ohif/"
    )
    parser.add_argument(
        "--remote-access",
        action="store_true",
        help="answer HTTP from other hosts (containers; put TLS in front of it)",
    )
    parser.add_argument("--stable-age", type=int, default=60, help="seconds to STABLE_SERIES")
    return parser.parse_args(argv)


def render(args: argparse.Namespace, environ: dict[str, str]) -> str:
    """The configuration for ``args``, with the passwords from ``environ``.

    Raises
    ------
    SystemExit
        If a password variable is missing or empty.
    """
    missing = [name for name in _PASSWORD_VARIABLES if not environ.get(name)]
    if missing:
        raise SystemExit(f"set {' and '.join(missing)} (see deploy/systemd/orthanc.env.example)")
    settings = load_settings(args.node_config)
    viewer = args.viewer_dir
    # An unbuilt viewer folder (or an empty volume) is not served: Orthanc would answer 404s.
    serve = {"/ohif": viewer} if viewer is not None and (viewer / "index.html").is_file() else {}
    config = OrthancConfig(
        work_dir=args.work_dir,
        http_port=settings.orthanc_http_port,
        dicom_port=settings.orthanc_dicom_port,
        node_aet=settings.ae_title,
        node_port=settings.port,
        stable_age=args.stable_age,
        admin_password=environ["ORTHANC_ADMIN_PASSWORD"],
        viewer_password=environ["ORTHANC_VIEWER_PASSWORD"],
        python_plugin=PythonPluginConfig(node_config=args.node_config, venv=Path(sys.prefix)),
        serve_folders=serve,
    )
    document = json.loads(config.render())
    modality = document["DicomModalities"]["pancreas_ai"]
    document["DicomModalities"]["pancreas_ai"] = [modality[0], args.node_host, modality[2]]
    document["RemoteAccessAllowed"] = bool(args.remote_access)
    return json.dumps(document, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the configuration (mode 0600: it holds the passwords)."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    text = render(args, dict(os.environ))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file left by an older run keeps its mode otherwise
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
