"""The slice of Orthanc's Python SDK the plugin uses, behind typed interfaces.

The ``orthanc`` module exists only inside Orthanc's process. Everything else in the plugin
talks to :class:`RestApi` (Orthanc's internal REST API) and :class:`RestOutput` (an answer to
an HTTP request), so it type-checks under strict mypy and can be exercised outside Orthanc.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

__all__ = [
    "UNKNOWN_RESOURCE",
    "EmbeddedRestApi",
    "OrthancCallError",
    "RestApi",
    "RestOutput",
    "get_json",
    "post_json",
    "send_bytes",
    "send_json",
]

#: ``OrthancPluginErrorCode_UnknownResource``: the resource does not exist (HTTP 404).
UNKNOWN_RESOURCE = 17


class OrthancCallError(Exception):
    """A call into Orthanc's REST API failed.

    Parameters
    ----------
    code
        Orthanc's error code (``orthanc.ErrorCode``; 17 is "unknown resource").
    message
        Orthanc's description of the error.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Orthanc error {code}: {message}")
        self.code = code
        self.message = message

    @property
    def not_found(self) -> bool:
        """Whether the resource does not exist."""
        return self.code == UNKNOWN_RESOURCE


class RestApi(Protocol):
    """Orthanc's REST API as seen from inside (no authentication, no HTTP)."""

    def get(self, path: str) -> bytes:
        """GET ``path``; raises :class:`OrthancCallError`."""

    def post(self, path: str, body: bytes) -> bytes:
        """POST ``body`` to ``path``; raises :class:`OrthancCallError`."""

    def put(self, path: str, body: bytes) -> bytes:
        """PUT ``body`` to ``path``; raises :class:`OrthancCallError`."""

    def delete(self, path: str) -> None:
        """DELETE ``path``; raises :class:`OrthancCallError`."""


class RestOutput(Protocol):
    """The answer object Orthanc hands to a REST callback (``orthanc.RestOutput``)."""

    def AnswerBuffer(self, answer: str | bytes, mime_type: str) -> None:  # noqa: N802
        """Answer HTTP 200 with ``answer``."""

    def SendHttpStatus(self, *args: Any) -> None:  # noqa: N802
        """Answer with another status (argument list differs between plugin versions)."""

    def SendMethodNotAllowed(self, allowed: str) -> None:  # noqa: N802
        """Answer HTTP 405 listing the allowed methods."""

    def SetHttpHeader(self, key: str, value: str) -> None:  # noqa: N802
        """Add a header to the answer."""


class EmbeddedRestApi:
    """:class:`RestApi` over the ``orthanc`` module's ``RestApi*`` functions.

    Parameters
    ----------
    orthanc
        The ``orthanc`` module (typed ``Any``: it has no stubs and exists only in Orthanc).
    """

    def __init__(self, orthanc: Any) -> None:
        self._orthanc = orthanc
        self._error: type[Exception] = orthanc.OrthancException

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._orthanc, name)(*args)
        except self._error as exc:
            code = int(exc.args[0]) if exc.args and isinstance(exc.args[0], int) else -1
            message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
            raise OrthancCallError(code, message) from exc

    def get(self, path: str) -> bytes:
        """GET ``path`` (``orthanc.RestApiGet``)."""
        return _as_bytes(self._call("RestApiGet", path))

    def post(self, path: str, body: bytes) -> bytes:
        """POST ``body`` to ``path`` (``orthanc.RestApiPost``)."""
        return _as_bytes(self._call("RestApiPost", path, body))

    def put(self, path: str, body: bytes) -> bytes:
        """PUT ``body`` to ``path`` (``orthanc.RestApiPut``)."""
        return _as_bytes(self._call("RestApiPut", path, body))

    def delete(self, path: str) -> None:
        """DELETE ``path`` (``orthanc.RestApiDelete``)."""
        self._call("RestApiDelete", path)


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def get_json(api: RestApi, path: str) -> Any:
    """GET ``path`` and decode its JSON answer."""
    return json.loads(api.get(path))


def post_json(api: RestApi, path: str, body: Any) -> Any:
    """POST ``body`` as JSON to ``path`` and decode the JSON answer (``None`` if empty)."""
    answer = api.post(path, json.dumps(body).encode("utf-8"))
    return json.loads(answer) if answer.strip() else None


def send_bytes(output: RestOutput, status: int, body: bytes, content_type: str) -> None:
    """Answer a REST callback with ``body`` (CSV, PDF) of ``content_type`` and ``status``."""
    if status == 200:
        output.AnswerBuffer(body, content_type)
        return
    output.SetHttpHeader("Content-Type", content_type)
    try:
        output.SendHttpStatus(status, body, len(body))
    except TypeError:
        output.SendHttpStatus(status, body)


def send_json(output: RestOutput, status: int, body: Any) -> None:
    """Answer a REST callback with ``body`` as JSON and HTTP ``status``.

    Orthanc answers 200 through ``AnswerBuffer`` only; other statuses go through
    ``SendHttpStatus``, whose arguments are ``(status, str, length)`` in orthanc-python 4.0 and
    ``(status, bytes)`` in later releases.
    """
    text = json.dumps(body, indent=1, sort_keys=True)
    if status == 200:
        output.AnswerBuffer(text, "application/json")
        return
    output.SetHttpHeader("Content-Type", "application/json")
    try:
        output.SendHttpStatus(status, text, len(text.encode("utf-8")))
    except TypeError:
        output.SendHttpStatus(status, text.encode("utf-8"))
