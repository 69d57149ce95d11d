"""Script that Orthanc's Python plugin loads (``"PythonScript"`` in Orthanc's configuration).

orthanc-python 4.0 embeds Debian's CPython 3.11, not the project's virtual environment. This
script, using the standard library only, makes the project importable before anything else:

1. it drops its own folder from ``sys.path`` (Orthanc adds it; ``orthanc_plugin``'s modules
   must be imported as a package, never as top-level modules);
2. it finds the virtual environment: ``PancreasAI.VirtualEnv`` in Orthanc's configuration,
   else the ``PANCREAS_AI_VENV`` environment variable, else ``<repository>/.venv``;
3. it checks that the environment was built for the same Python minor version (compiled
   wheels such as pydantic-core and SQLAlchemy's extensions share the CPython 3.11 ABI), and
   puts the repository first and the environment's ``site-packages`` (with its ``.pth``
   files) after the standard library and *before* Debian's ``dist-packages`` (a PyPI backport
   named like a standard module, such as ``dataclasses`` 0.6, must not shadow it);
4. it creates the one plugin object and registers its callbacks.

Any failure is written to Orthanc's log; Orthanc keeps running without the plugin.
"""

from __future__ import annotations

import importlib
import json
import os
import site
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent


def _site_packages(orthanc: Any) -> Path:
    section = json.loads(orthanc.GetConfiguration()).get("PancreasAI", {})
    venv = Path(section.get("VirtualEnv") or os.environ.get("PANCREAS_AI_VENV") or _REPO / ".venv")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    packages = venv / "lib" / f"python{version}" / "site-packages"
    if not packages.is_dir():
        raise RuntimeError(f"no site-packages for Python {version} in {venv}")
    cfg = venv / "pyvenv.cfg"
    if cfg.is_file():
        for line in cfg.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version", "version_info") and not value.strip().startswith(
                version + "."
            ):
                raise RuntimeError(
                    f"{venv} was built for Python {value.strip()}, Orthanc embeds {version}"
                )
    return packages


def _prepare_path(orthanc: Any) -> None:
    here = str(_HERE)
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    packages = _site_packages(orthanc)
    before = list(sys.path)
    site.addsitedir(str(packages))
    added = [p for p in sys.path if p not in before]
    rest = [p for p in before if p != str(_REPO)]
    packages_at = next((n for n, p in enumerate(rest) if _is_packages_dir(p)), len(rest))
    sys.path[:] = [str(_REPO), *rest[:packages_at], *added, *rest[packages_at:]]


def _is_packages_dir(path: str) -> bool:
    """Whether a ``sys.path`` entry holds installed packages rather than the standard library."""
    return Path(path).name in ("dist-packages", "site-packages")


def _load() -> object:
    try:
        orthanc = importlib.import_module("orthanc")
    except ImportError:
        return None  # imported outside Orthanc (tooling, tests): nothing to register
    try:
        _prepare_path(orthanc)
        plugin = importlib.import_module("orthanc_plugin.plugin")
    except (RuntimeError, OSError, ImportError) as exc:
        orthanc.LogError(f"PancreasAI plugin not loaded: {type(exc).__name__}: {exc}")
        return None
    return plugin.install(orthanc)


#: The plugin's one state object; Orthanc holds its bound methods as callbacks.
PLUGIN = _load()
