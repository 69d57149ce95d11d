"""Reference receivers for ``make bench-intake``: pynetdicom with nothing of the node's work.

``python bench/_bare_pynetdicom_scp.py PORT`` acknowledges each instance without saving it:
the ceiling that the pure-Python DICOM stack puts on any pynetdicom-based node.

``python bench/_bare_pynetdicom_scp.py PORT FOLDER`` is the *durability floor*: the data set is
received straight into a file (pynetdicom's chunked receive, as the node does), flushed with
``fsync``, renamed into ``FOLDER`` and the folder entry flushed, then acknowledged. No check,
no parse, no database: what the node's rule "durable before acknowledged" costs by itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt


def _acknowledge(event: Any) -> int:
    event.encoded_dataset()  # what any real receiver must at least do
    return 0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _durable(folder: Path) -> Any:
    def acknowledge(event: Any) -> int:
        received = Path(event.dataset_path)
        _fsync(received)
        received.replace(folder / f"{event.request.AffectedSOPInstanceUID}.dcm")
        _fsync(folder)
        return 0

    return acknowledge


def main() -> None:
    handler = _acknowledge
    if len(sys.argv) > 2:
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        _config.STORE_RECV_CHUNKED_DATASET = True
        handler = _durable(folder)
    ae = AE(ae_title="BARE")
    ae.maximum_pdu_size = 0
    ae.add_supported_context("1.2.840.10008.1.1")
    for context in AllStoragePresentationContexts:
        if context.abstract_syntax is not None:
            ae.add_supported_context(context.abstract_syntax, [ExplicitVRLittleEndian])
    ae.start_server(("127.0.0.1", int(sys.argv[1])), evt_handlers=[(evt.EVT_C_STORE, handler)])


if __name__ == "__main__":
    main()
