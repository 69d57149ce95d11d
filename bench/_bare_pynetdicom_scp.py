"""Reference receiver for ``make bench-intake``: pynetdicom acknowledging without saving.

It measures the ceiling that the pure-Python DICOM stack puts on any pynetdicom-based node.
Usage: ``python bench/_bare_pynetdicom_scp.py PORT``.
"""

from __future__ import annotations

import sys
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, AllStoragePresentationContexts, evt


def _acknowledge(event: Any) -> int:
    event.encoded_dataset()  # what any real receiver must at least do
    return 0


def main() -> None:
    ae = AE(ae_title="BARE")
    ae.maximum_pdu_size = 0
    ae.add_supported_context("1.2.840.10008.1.1")
    for context in AllStoragePresentationContexts:
        if context.abstract_syntax is not None:
            ae.add_supported_context(context.abstract_syntax, [ExplicitVRLittleEndian])
    ae.start_server(("127.0.0.1", int(sys.argv[1])), evt_handlers=[(evt.EVT_C_STORE, _acknowledge)])


if __name__ == "__main__":
    main()
