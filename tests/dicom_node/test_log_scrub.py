"""No patient identifiers in the node's log, whichever library logs (issue 22, D6, item 5)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import config
from pydicom.dataelem import DataElement

from dicom_node._log_scrub import ScrubFilter
from dicom_node.node import Node
from dicom_node.statuses import StoreStatus
from tests.dicom_node.conftest import PhantomSeries, node_settings
from tests.dicom_node.test_scp import read, send_datasets

pytestmark = pytest.mark.integration

PHI = ("DOE^JANE", "PID12345", "19500101")


@pytest.fixture
def node_log(tmp_path: Path) -> Iterator[Path]:
    """A file handler on the root logger, as ``pancreas-node serve`` sets up ``node.log``."""
    path = tmp_path / "node.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def test_bad_uid_values_carrying_identifiers_stay_out_of_the_log(
    tmp_path: Path, ct_series: PhantomSeries, node_log: Path
) -> None:
    ds = read(ct_series.files[0])
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI
    # A UI value holding the identifiers: pydicom's validation warning quotes it.
    ds.add(DataElement(0x0020000D, "UI", "^".join(PHI), validation_mode=config.IGNORE))
    with Node(node_settings(tmp_path / "node")) as node:
        statuses = send_datasets(node.scp.port, [ds])
    assert statuses == [StoreStatus.MISSING_REQUIRED_UID]
    text = node_log.read_text(encoding="utf-8")
    assert "Invalid value for VR UI" in text  # the warning itself is kept ...
    assert "StudyInstanceUID" in text  # ... and the node's own line names the attribute
    for value in PHI:
        assert value not in text


def _record(name: str, msg: str, args: tuple[object, ...], exc: bool) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise KeyError("PID12345")
        except KeyError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, exc_info)


def test_filter_redacts_third_party_values_and_drops_tracebacks_below_debug() -> None:
    scrub = ScrubFilter()
    record = _record("pydicom", "Invalid value for VR %s: %r.", ("UI", "DOE^JANE"), exc=False)
    assert scrub.filter(record)
    assert record.getMessage() == "Invalid value for VR UI: <redacted>."
    own = _record("dicom_node.handlers", "series %s: %s", ("1.2.3", "'kept'"), exc=True)
    assert scrub.filter(own)
    assert own.exc_info is None
    assert own.getMessage() == "series 1.2.3: 'kept' [KeyError; traceback at DEBUG]"
    debug = _record("pynetdicom.dul", "closed", (), exc=True)
    assert ScrubFilter(keep_tracebacks=True).filter(debug)
    assert debug.exc_info is not None


def test_pydicoms_warnings_module_copies_are_dropped_others_redacted() -> None:
    scrub = ScrubFilter()
    # What logging.captureWarnings makes of pydicom's warnings.warn (already logged by pydicom).
    source = "/venv/lib/python3.11/site-packages/pydicom/valuerep.py:440: UserWarning: "
    copy = _record("py.warnings", "%s", (source + "Invalid value for VR UI: 'DOE^JANE'.",), False)
    assert not scrub.filter(copy)
    other = _record("py.warnings", "%s", ("/app/x.py:1: UserWarning: bad 'PID12345'",), False)
    assert scrub.filter(other)
    assert "PID12345" not in other.getMessage()
