"""What the deployment tests share: the files of ``deploy/`` and how to read them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
COMPOSE_ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
KUBERNETES_DIR = DEPLOY / "kubernetes"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error} (the compose
# specification's interpolation); $$ is a literal dollar.
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file (systemd's EnvironmentFile=, compose's .env)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


def interpolate(text: str, variables: dict[str, str]) -> str:
    """``text`` with compose's ``${...}`` expressions replaced from ``variables``.

    Raises
    ------
    KeyError
        For ``${NAME:?message}`` (or ``?``) whose variable is unset (or empty, with ``:``).
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = variables.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in {":-", "-"}:
            return arg if (value is None if op == "-" else empty) else str(value)
        if op in {":?", "?"}:
            if value is None if op == "?" else empty:
                raise KeyError(f"{name}: {arg}")
            return str(value)
        return "" if value is None else value

    return _VARIABLE.sub(replace, text)


def load_compose(variables: dict[str, str]) -> dict[str, Any]:
    """The compose file, interpolated with ``variables``, anchors and merge keys resolved."""
    text = interpolate(COMPOSE_FILE.read_text(encoding="utf-8"), variables)
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def kubernetes_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every document of every manifest in ``deploy/kubernetes/``, with its file."""
    out: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(KUBERNETES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                assert isinstance(document, dict), f"{path.name}: not a mapping"
                out.append((path, document))
    return out
