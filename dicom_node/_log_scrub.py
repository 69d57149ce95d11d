"""Keep patient identifiers out of the node's logs (issue 22, D6 and item 5).

The node's own loggers never log values, only UIDs and counts. Third-party libraries do:
pydicom's validation warnings quote the offending value (``Invalid value for VR UI:
'DOE^JANE^19500101'``), and a quoted value may be a patient's name, ID or birth date. The
filter below sits on the log *handlers*, so it sees every record whichever logger made it:

* records from pydicom, pynetdicom and the warnings module have every quoted value replaced;
* records with a traceback keep it only when DEBUG is enabled; otherwise the line ends with the
  exception's type, so one failure stays one line.

pydicom also repeats each validation message through :mod:`warnings`, which would print it,
value and all, to standard error. :func:`install_scrubbing` routes warnings into logging
(``py.warnings``); the filter drops those pydicom already logged and redacts the others.
"""

from __future__ import annotations

import logging
import os
import re

__all__ = ["ScrubFilter", "install_scrubbing"]

_THIRD_PARTY = ("pydicom", "pynetdicom", "py.warnings")
# A Python repr of a str or bytes value, single- or double-quoted, escapes included.
_QUOTED = re.compile(r"""b?'(?:[^'\\]|\\.)*'|b?"(?:[^"\\]|\\.)*\"""")
REDACTED = "<redacted>"
_PYDICOM_SOURCE = f"{os.sep}pydicom{os.sep}"


class ScrubFilter(logging.Filter):
    """Redact quoted values in third-party records and drop tracebacks below DEBUG.

    Parameters
    ----------
    keep_tracebacks
        Keep ``exc_info`` (the node runs at DEBUG).
    """

    def __init__(self, keep_tracebacks: bool = False) -> None:
        super().__init__()
        self.keep_tracebacks = keep_tracebacks

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; drop only pydicom's warnings-module copies."""
        if record.name == "py.warnings" and _PYDICOM_SOURCE in str(record.args or record.msg):
            return False  # pydicom logged the same message through its own logger
        if record.name.startswith(_THIRD_PARTY):
            record.msg = _QUOTED.sub(REDACTED, record.getMessage())
            record.args = None
        if record.exc_info and not self.keep_tracebacks:
            exc_type = record.exc_info[0]
            name = exc_type.__name__ if exc_type is not None else "error"
            record.msg = f"{record.getMessage()} [{name}; traceback at DEBUG]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def install_scrubbing(keep_tracebacks: bool = False) -> int:
    """Route warnings into logging and add a :class:`ScrubFilter` to every handler.

    Idempotent: a handler that already has one is left alone. Call it after the log handlers
    are set up (the node does at start).

    Returns
    -------
    int
        How many handlers got the filter now.
    """
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    logging.captureWarnings(True)
    added = 0
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, ScrubFilter) for f in handler.filters):
                handler.addFilter(ScrubFilter(keep_tracebacks))
                added += 1
    return added
