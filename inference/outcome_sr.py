"""The outcome document: a small Comprehensive SR for an analysis that gave no result.

When the pipeline refuses a CT (:class:`inference.tasks.AnalysisError`, e.g. ``not-localised``)
no SEG, measurement SR or PDF is written, yet the viewer should still show that the node looked
at the series and why it gave nothing. This writer builds one Comprehensive SR (highdicom)
that references the source series and holds, as text items, the status word (``ai-refused``,
:class:`pancreas_contracts.status.StudyStatus`), the reason, what the checks measured, the
model bundle and "Investigational, not for clinical use."; its series description starts with
"PancreasAI" so the study browser names it. No patient identifiers beyond the source's own
Patient and Study modules, which highdicom copies from the evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from inference._writer_common import (
    SourceImages,
    device_serial_number,
    load_source_headers,
    node_software_version,
    save_atomically,
)
from inference.dicom_codes import MANUFACTURER
from pancreas_contracts.result import BundleRef
from pancreas_contracts.status import STATUS_TEXT, StudyStatus

__all__ = [
    "OUTCOME_SERIES_NUMBER",
    "OUTCOME_SR_NAME",
    "build_outcome_sr",
    "write_outcome_sr",
]

#: Series number of the outcome document (beside the SEG, SR and PDF series).
OUTCOME_SERIES_NUMBER: Final = 9004
#: File name of the outcome document in ``<data>/results/<job id>/``.
OUTCOME_SR_NAME: Final = "outcome.dcm"
NOTICE: Final = "Investigational, not for clinical use."

_TITLE = Code("18748-4", "LN", "Diagnostic imaging report")
_STATUS = Code("121071", "DCM", "Finding")
_REASON = Code("121106", "DCM", "Comment")
_MEASURED = Code("121073", "DCM", "Impression")
_ALGORITHM = Code("111001", "DCM", "Algorithm Name")
_VERSION = Code("111003", "DCM", "Algorithm Version")


def _text(name: Code, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value, relationship_type="CONTAINS")


def build_outcome_sr(
    status: StudyStatus,
    reason: str,
    details: Mapping[str, float | str],
    bundle: BundleRef,
    headers: Sequence[Dataset],
    *,
    details_text: str = "",
) -> hd.sr.ComprehensiveSR:
    """The outcome document for ``headers``' series (see the module docstring).

    Parameters
    ----------
    status
        The study status word the document states (``ai-refused``).
    reason
        The named reason (``not-localised``).
    details
        What the checks measured (rendered as ``details_text`` when given, else name value).
    bundle
        The model bundle that ran.
    headers
        The source series' headers (without pixel data).
    """
    measured = details_text or ", ".join(f"{k} {v}" for k, v in details.items())
    container = hd.sr.ContainerContentItem(name=_TITLE)
    container.ContentSequence = DicomSequence(
        [
            _text(_STATUS, f"{status.value}: {STATUS_TEXT[status]}"),
            _text(_REASON, reason),
            *([_text(_MEASURED, measured)] if measured else []),
            _text(_ALGORITHM, bundle.name),
            _text(_VERSION, f"{bundle.version} (bundle sha256 {bundle.sha256[:16]})"),
            _text(_REASON, NOTICE),
        ]
    )
    return hd.sr.ComprehensiveSR(
        evidence=list(headers),
        content=container,
        series_instance_uid=generate_uid(),
        series_number=OUTCOME_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=f"PancreasAI {status.value}: {reason} (investigational)"[:64],
        manufacturer_model_name=bundle.name,
        software_versions=node_software_version(),
        device_serial_number=device_serial_number(bundle),
    )


def write_outcome_sr(
    source: SourceImages,
    out_dir: Path,
    *,
    status: StudyStatus,
    reason: str,
    details: Mapping[str, float | str],
    bundle: BundleRef,
    details_text: str = "",
) -> Path:
    """Write the outcome document as ``out_dir/outcome.dcm`` (all or nothing) and return it.

    Raises
    ------
    ValueError
        When ``source`` holds no readable image series.
    OSError
        When ``out_dir`` cannot be written.
    """
    headers = load_source_headers(source)
    document = build_outcome_sr(status, reason, details, bundle, headers, details_text=details_text)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / OUTCOME_SR_NAME
    save_atomically(document, path)
    return path
