"""Writing an analysis' files for :mod:`inference.analysis`: SEG, SR, PDF and ``result.json``.

Every object is written with a SOP Instance UID chosen beforehand, so the result stored in the
SR and printed in the PDF already names all of them. The lymph-node SEG (result 1.6) is
written before the SR, whose node groups reference its segments. Files are written all or
nothing (the writers save atomically); ``result.json`` is written last, so its presence means a
complete set.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from inference._writer_common import save_atomically
from inference.lymph_node_seg import build_lymph_node_seg
from inference.pdf_report import render_report_pdf, write_pdf_report
from inference.seg_writer import build_lesion_seg, build_seg
from inference.sr_writer import write_sr
from inference.timing import timed
from inference.volume import Volume, write_nifti
from pancreas_contracts.lymph_nodes import LymphNodeFinding
from pancreas_contracts.result import AnalysisResult, BundleRef, Outputs

__all__ = [
    "DETECTION_SEG_NAME",
    "LABEL_NAME",
    "LYMPH_NODE_SEG_NAME",
    "PDF_DICOM_NAME",
    "PDF_NAME",
    "RESULT_NAME",
    "SEG_NAME",
    "SR_NAME",
    "DetectionSegTarget",
    "WrittenFiles",
    "new_outputs",
    "write_detection_seg",
    "write_label_and_pdf",
    "write_label_seg",
    "write_lymph_node_seg",
    "write_result_json",
    "write_sr_citing",
    "write_without_dicom",
]

SEG_NAME: Final = "seg.dcm"
DETECTION_SEG_NAME: Final = "seg-detection.dcm"
LYMPH_NODE_SEG_NAME: Final = "seg-lymph-nodes.dcm"
SR_NAME: Final = "sr.dcm"
PDF_DICOM_NAME: Final = "report.dcm"
PDF_NAME: Final = "report.pdf"
RESULT_NAME: Final = "result.json"
LABEL_NAME: Final = "label.nii.gz"


@dataclass(frozen=True)
class WrittenFiles:
    """The DICOM objects of one analysis (empty for a NIfTI input)."""

    dicom: tuple[Path, ...]


def new_outputs() -> Outputs:
    """Fresh SOP Instance UIDs for the SEG, SR and PDF objects."""
    return Outputs(
        seg_sop_uid=generate_uid(), sr_sop_uid=generate_uid(), pdf_sop_uid=generate_uid()
    )


def write_label_seg(
    bundle: BundleRef,
    seg_sop_uid: str,
    seg_label: Volume,
    headers: Sequence[Dataset],
    out_dir: Path,
    timings: MutableMapping[str, float],
) -> tuple[Path, Dataset]:
    """Write ``seg.dcm`` (timed as ``write_seg``): its path and the SEG's header.

    The header is the SEG object without its Per-frame Functional Groups and Pixel Data:
    what the SR cites (:func:`write_sr_citing`), without the frames it does not read.

    Parameters
    ----------
    bundle
        The model that segmented.
    seg_sop_uid
        The SEG's SOP Instance UID (the result's ``outputs.seg_sop_uid``).
    seg_label
        The label map in the source's native index order.
    headers
        Source image headers (one per instance).
    out_dir
        Destination folder.
    timings
        Receives the ``write_seg`` seconds.

    Raises
    ------
    ValueError
        If the writer refuses its input (label off the grid, no foreground, ...).
    """
    path = out_dir / SEG_NAME

    def seg() -> Dataset:
        built = build_seg(seg_label, headers, bundle, sop_instance_uid=seg_sop_uid)
        save_atomically(built, path)
        return _seg_header(built)

    return path, timed(timings, "write_seg", seg)


def _seg_header(seg: Dataset) -> Dataset:
    """``seg`` without its per-frame items and pixels (PS3.3 C.7.6.16, C.8.20.2): small."""
    header = Dataset()
    for element in seg:
        if element.keyword not in _FRAME_KEYWORDS:
            header.add(element)
    header.file_meta = seg.file_meta
    return header


#: What a SEG holds per frame, and the SR need not carry across processes.
_FRAME_KEYWORDS: Final = ("PerFrameFunctionalGroupsSequence", "PixelData")


def write_sr_citing(
    result: AnalysisResult,
    seg: Dataset,
    headers: Sequence[Dataset],
    out_dir: Path,
    timings: MutableMapping[str, float],
    *,
    lymph_node_seg: Path | None = None,
) -> Path:
    """Write ``sr.dcm`` (timed as ``write_sr``), citing ``seg`` (the SEG or its header).

    ``lymph_node_seg`` is the lymph-node SEG already written for this analysis, whose
    segments the SR's node groups reference.
    """
    path = out_dir / SR_NAME
    timed(
        timings,
        "write_sr",
        lambda: write_sr(
            result,
            seg,
            headers,
            path,
            sop_instance_uid=result.outputs.sr_sop_uid,
            lymph_node_seg=lymph_node_seg,
        ),
    )
    return path


def write_label_and_pdf(
    result: AnalysisResult,
    image: Volume,
    label: Volume,
    headers: Sequence[Dataset],
    out_dir: Path,
    timings: MutableMapping[str, float],
) -> Path:
    """Write ``label.nii.gz`` and the PDF report, bare and encapsulated; the latter's path.

    ``image`` and ``label`` are the CT and label map on the canonical grid; ``timings``
    receives ``write_label`` and ``write_pdf``.
    """
    timed(timings, "write_label", lambda: write_nifti(label, out_dir / LABEL_NAME))
    pdf_path = out_dir / PDF_DICOM_NAME
    timed(
        timings,
        "write_pdf",
        lambda: write_pdf_report(
            result,
            image,
            label,
            headers,
            pdf_path,
            pdf_path=out_dir / PDF_NAME,
            sop_instance_uid=result.outputs.pdf_sop_uid,
        ),
    )
    return pdf_path


@dataclass(frozen=True)
class DetectionSegTarget:
    """Where the detection SEG goes: ``out_dir`` and its chosen SOP Instance UID."""

    out_dir: Path
    sop_instance_uid: str | None


def write_detection_seg(
    lesions: Volume,
    probabilities: Sequence[float],
    headers: Sequence[Dataset],
    detector: BundleRef,
    target: DetectionSegTarget,
    timings: MutableMapping[str, float],
) -> Path:
    """Write the SEG of the detector's reported lesions (``seg-detection.dcm``).

    ``lesions`` is in the source's native index order (like the SEG label map); timed as
    ``write_detection_seg``.
    """
    path = target.out_dir / DETECTION_SEG_NAME

    def write() -> None:
        seg = build_lesion_seg(
            lesions, probabilities, headers, detector, sop_instance_uid=target.sop_instance_uid
        )
        save_atomically(seg, path)

    timed(timings, "write_detection_seg", write)
    return path


def write_lymph_node_seg(
    nodes: Volume,
    findings: Sequence[LymphNodeFinding],
    headers: Sequence[Dataset],
    model: BundleRef,
    target: DetectionSegTarget,
    timings: MutableMapping[str, float],
) -> Path:
    """Write the SEG of the reported lymph nodes (``seg-lymph-nodes.dcm``, one segment each).

    ``nodes`` (value ``node_id``) is in the source's native index order, like the SEG label
    map; ``target`` holds ``outputs.lymph_node_seg_sop_uid``; timed as ``write_lymph_node_seg``.
    """
    path = target.out_dir / LYMPH_NODE_SEG_NAME

    def write() -> None:
        seg = build_lymph_node_seg(
            nodes, findings, headers, model, sop_instance_uid=target.sop_instance_uid
        )
        save_atomically(seg, path)

    timed(timings, "write_lymph_node_seg", write)
    return path


def write_without_dicom(
    result: AnalysisResult,
    image: Volume,
    label: Volume,
    out_dir: Path,
    timings: MutableMapping[str, float],
) -> WrittenFiles:
    """For a NIfTI input: the label map as NIfTI and the bare PDF (no DICOM source to cite)."""
    timed(timings, "write_label", lambda: write_nifti(label, out_dir / LABEL_NAME))

    def pdf() -> None:
        partial = out_dir / f".{PDF_NAME}.partial"
        partial.write_bytes(render_report_pdf(result, image, label))
        partial.replace(out_dir / PDF_NAME)

    timed(timings, "write_pdf", pdf)
    return WrittenFiles(())


def write_result_json(result: AnalysisResult, out_dir: Path) -> Path:
    """Write ``result.json`` atomically and return its path."""
    path = out_dir / RESULT_NAME
    partial = out_dir / f".{RESULT_NAME}.partial"
    partial.write_text(result.to_json() + "\n", encoding="utf-8")
    partial.replace(path)
    return path
