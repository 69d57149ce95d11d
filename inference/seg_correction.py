"""A radiologist's segmentation correction as a new DICOM Segmentation version (issue 26).

The viewer sends the AI segmentation as the radiologist edited it with OHIF's segmentation
tools: one run-length encoded label image per CT image, keyed by the CT image's
SOPInstanceUID, holding the AI SEG's segment numbers (the ``Correction`` body of
``docs/tumor-board.md``). :func:`parse_correction` validates it into a
:class:`LabelCorrection`; :func:`build_corrected_seg` turns it into a new Segmentation
(PS3.3 A.51) that

- derives from the same CT images (each label image lands on the CT image named by its
  SOPInstanceUID, never on a position in a list, so slice order and file order do not matter);
- keeps every segment of the AI SEG with its number, Segment Label, Segmented Property
  Category/Type codes, Tracking ID/UID, colour and algorithm identification, so a corrected
  segment means what the AI one meant; a segment the radiologist changed is SEMIAUTOMATIC
  (PS3.3 C.8.20.2 Segment Algorithm Type: "calculated segment with user assistance"), an
  untouched one stays AUTOMATIC;
- names the radiologist in Content Creator's Name (PS3.3 C.10.9 Content Identification macro)
  and says it is the reviewer-corrected version in Content Label, Content Description and
  Series Description;
- references the AI SEG it corrects twice, as the standard asks: in the Source Image Sequence
  (0008,2112) of the General Reference module (PS3.3 C.12.4: "images or other composite SOP
  Instances that were used to derive this image"), with Purpose of Reference DCM 121322
  "Source image for image processing operation" (CID 7202) and a Derivation Description, and in
  the Referenced Series Sequence of the Common Instance Reference module (PS3.3 C.12.2, which
  lists every instance the object references, by series);
- is a new series (new SeriesInstanceUID, Series Number :data:`CORRECTED_SEG_SERIES_NUMBER`,
  after the AI's) in the same study.

The pixel encoding is the AI SEG writer's (:func:`inference.seg_writer.segmentation_from_frames`),
so OHIF and Orthanc read both versions alike. :func:`structure_volumes_ml` recomputes the
structures' volumes from the corrected label images for the SR amendment
(:mod:`inference.sr_amendment`). Investigational, not for clinical use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import SegmentationStorage
from pydicom.valuerep import PersonName

from inference._dicom_geometry import PlaneGeometry, stack_geometry
from inference._volume_errors import GeometryError
from inference.dicom_codes import (
    CORRECTED_SEG_CONTENT_LABEL,
    CORRECTED_SEG_CONTENT_PREFIX,
    CORRECTED_SEG_SERIES_DESCRIPTION,
    CORRECTED_SEG_SERIES_NUMBER,
    CORRECTION_DERIVATION_DESCRIPTION,
    CORRECTION_SOURCE_PURPOSE,
)
from inference.seg_writer import SeriesText, segmentation_from_frames
from inference.tasks.resectability.measurements import volume_ml
from pancreas_contracts.result import BundleRef

__all__ = [
    "MAX_MATRIX",
    "CorrectionError",
    "LabelCorrection",
    "build_corrected_seg",
    "parse_correction",
    "read_correction",
    "reviewer_person_name",
    "structure_volumes_ml",
]

#: Largest Rows or Columns accepted (a CT is 512; this bounds the memory a payload can ask for).
MAX_MATRIX: Final = 4096
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_MAX_SEGMENT = 255  # label images are uint8
# PS3.5 6.2 PN: at most 64 characters per component group; "^" and "=" are delimiters and
# "\" the value separator, so a user name holding them would change the name's structure.
_PN_MAX = 64
_PN_UNSAFE = re.compile(r"[\^=\\\x00-\x1f\x7f]")


class CorrectionError(ValueError):
    """A correction cannot be written: an invalid payload, or one that does not fit its inputs.

    The message says what is wrong in words, without identifiers (it is stored as the review's
    ``correction_error`` and may be logged).
    """


@dataclass(frozen=True)
class LabelCorrection:
    """A validated correction: per CT image, the edited label image.

    Parameters
    ----------
    rows, columns
        The label images' size (the CT images' Rows and Columns).
    based_on_seg_sop_instance_uid
        The AI SEG that was edited.
    referenced_series_instance_uid
        The CT series.
    frames
        Per CT SOPInstanceUID, the label image (``rows x columns``, uint8, read-only) holding
        the AI SEG's segment numbers, 0 for background.
    reason
        The radiologist's reason (free text: never logged).
    category
        The radiologist's board category when the correction changes it (``None``: unchanged).
    """

    rows: int
    columns: int
    based_on_seg_sop_instance_uid: str
    referenced_series_instance_uid: str
    frames: Mapping[str, npt.NDArray[np.uint8]] = field(repr=False)
    reason: str | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", MappingProxyType(dict(self.frames)))

    @property
    def segment_numbers(self) -> frozenset[int]:
        """The segment numbers present in any label image (0 excluded)."""
        present: set[int] = set()
        for image in self.frames.values():
            present.update(int(v) for v in np.unique(image))
        return frozenset(present - {0})


def read_correction(path: Path) -> LabelCorrection:
    """Read and validate a stored correction (``<data>/corrections/<id>.json``).

    Raises
    ------
    CorrectionError
        If the file is not JSON or the payload is invalid (:func:`parse_correction`).
    OSError
        If the file cannot be read.
    """
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorrectionError("the stored correction is not valid JSON") from exc
    return parse_correction(payload)


def parse_correction(payload: object) -> LabelCorrection:
    """Validate a ``Correction`` body (``docs/tumor-board.md``) and decode its label images.

    Each frame's ``rle`` is ``[segment number, run length]`` pairs in row-major order (row 0
    first, column fastest) summing to ``rows x columns``.

    Raises
    ------
    CorrectionError
        If a field is missing or mistyped, a UID is malformed or repeated, a run is not a pair
        of a segment number 0-255 and a positive length, or a frame's runs do not sum to
        ``rows x columns``.
    """
    if not isinstance(payload, Mapping):
        raise CorrectionError("the correction must be a JSON object")
    rows = _positive_int(payload.get("rows"), "rows")
    columns = _positive_int(payload.get("columns"), "columns")
    if rows > MAX_MATRIX or columns > MAX_MATRIX:
        raise CorrectionError(f"rows and columns must be at most {MAX_MATRIX}")
    frames_in = payload.get("frames")
    if not isinstance(frames_in, list) or not frames_in:
        raise CorrectionError("frames must be a non-empty list (one entry per CT image)")
    frames: dict[str, npt.NDArray[np.uint8]] = {}
    for index, entry in enumerate(frames_in):
        if not isinstance(entry, Mapping):
            raise CorrectionError(f"frame {index} must be an object")
        uid = _uid(entry.get("sop_instance_uid"), f"frame {index}: sop_instance_uid")
        if uid in frames:
            raise CorrectionError(f"frame {index}: a CT image appears twice")
        frames[uid] = _decode_runs(entry.get("rle"), rows, columns, f"frame {index}")
    return LabelCorrection(
        rows=rows,
        columns=columns,
        based_on_seg_sop_instance_uid=_uid(
            payload.get("based_on_seg_sop_instance_uid"), "based_on_seg_sop_instance_uid"
        ),
        referenced_series_instance_uid=_uid(
            payload.get("referenced_series_instance_uid"), "referenced_series_instance_uid"
        ),
        frames=frames,
        reason=_optional_text(payload.get("reason"), "reason"),
        category=_optional_text(payload.get("category"), "category"),
    )


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CorrectionError(f"{name} must be a positive integer")
    return value


def _uid(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not _UID.match(value):
        raise CorrectionError(f"{name} must be a DICOM UID")
    return value


def _optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CorrectionError(f"{name} must be a string or null")
    return value.strip() or None


def _decode_runs(runs: object, rows: int, columns: int, where: str) -> npt.NDArray[np.uint8]:
    """One frame's ``[segment, length]`` runs as a read-only ``rows x columns`` uint8 image."""
    if not isinstance(runs, list) or not runs:
        raise CorrectionError(f"{where}: rle must be a non-empty list of [segment, length] pairs")
    values = np.empty(len(runs), dtype=np.int64)
    lengths = np.empty(len(runs), dtype=np.int64)
    for i, run in enumerate(runs):
        if (
            not isinstance(run, list)
            or len(run) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in run)
        ):
            raise CorrectionError(f"{where}: run {i} must be a pair of integers")
        values[i], lengths[i] = run
    if values.min() < 0 or values.max() > _MAX_SEGMENT:
        raise CorrectionError(f"{where}: segment numbers must be 0-{_MAX_SEGMENT}")
    if lengths.min() <= 0:
        raise CorrectionError(f"{where}: run lengths must be positive")
    total = int(lengths.sum())
    if total != rows * columns:
        raise CorrectionError(
            f"{where}: the runs cover {total} pixels, not rows x columns = {rows * columns}"
        )
    image = np.repeat(values.astype(np.uint8), lengths).reshape(rows, columns)
    image.flags.writeable = False
    return image


def reviewer_person_name(user: str) -> PersonName:
    """The reviewer's Orthanc user name as a valid PN value (PS3.5 6.2).

    The name becomes the family name component: PN delimiters (``^``, ``=``), the value
    separator and control characters become spaces, and it is cut to 63 characters and ends
    with the component delimiter (``alice^``): a PN value without any ``^`` is the retired
    ACR-NEMA free-form name, which validators (dciodvfy) flag.

    Raises
    ------
    CorrectionError
        If nothing printable is left (an empty user name).
    """
    cleaned = " ".join(_PN_UNSAFE.sub(" ", user).split())[: _PN_MAX - 1].strip()
    if not cleaned:
        raise CorrectionError("the reviewer has no usable name")
    return PersonName(f"{cleaned}^")


def build_corrected_seg(
    correction: LabelCorrection,
    ai_seg: Dataset,
    headers: Sequence[Dataset],
    reviewer: str,
    *,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> hd.seg.Segmentation:
    """The reviewer-corrected Segmentation of ``correction`` (see the module notes).

    Parameters
    ----------
    correction
        The validated label images.
    ai_seg
        The AI SEG the radiologist edited (with its pixel data: unchanged segments stay
        AUTOMATIC).
    headers
        The CT series' image headers (single-frame images, any order).
    reviewer
        The reviewer's user name (Content Creator's Name, :func:`reviewer_person_name`).
    sop_instance_uid, series_instance_uid
        UIDs of the new object (default: new UIDs).

    Raises
    ------
    CorrectionError
        If the correction was made on another SEG or series, names a CT image that is not in
        the series, misses one, has another matrix size, uses a segment number the AI SEG does
        not have, or the AI SEG does not identify its model.
    """
    _check_against_ai_seg(correction, ai_seg)
    order = _source_order(correction, headers)
    pixel_array = np.stack([correction.frames[uid] for uid in order])
    edited = _edited_segments(ai_seg, order, pixel_array)
    descriptions = []
    for item in ai_seg.SegmentSequence:
        description = hd.seg.SegmentDescription.from_dataset(item, copy=True)
        if int(item.SegmentNumber) in edited:
            description.SegmentAlgorithmType = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC.value
        descriptions.append(description)
    seg = segmentation_from_frames(
        pixel_array,
        descriptions,
        list(headers),
        _ai_bundle(ai_seg),
        SeriesText(
            CORRECTED_SEG_SERIES_NUMBER,
            CORRECTED_SEG_SERIES_DESCRIPTION,
            CORRECTED_SEG_CONTENT_PREFIX,
        ),
        omit_empty_frames=True,
        sop_instance_uid=sop_instance_uid,
        series_instance_uid=series_instance_uid,
    )
    seg.ContentLabel = CORRECTED_SEG_CONTENT_LABEL
    seg.ContentCreatorName = reviewer_person_name(reviewer)
    _reference_ai_seg(seg, ai_seg)
    return seg


def _check_against_ai_seg(correction: LabelCorrection, ai_seg: Dataset) -> None:
    if str(ai_seg.get("SOPClassUID", "")) != SegmentationStorage:
        raise CorrectionError("the AI object to correct is not a Segmentation")
    if str(ai_seg.SOPInstanceUID) != correction.based_on_seg_sop_instance_uid:
        raise CorrectionError("the correction was made on another AI SEG than the job's")
    series = {str(s.SeriesInstanceUID) for s in ai_seg.get("ReferencedSeriesSequence", [])}
    if correction.referenced_series_instance_uid not in series:
        raise CorrectionError("the correction names another CT series than the AI SEG's")
    numbers = {int(item.SegmentNumber) for item in ai_seg.SegmentSequence}
    unknown = sorted(correction.segment_numbers - numbers)
    if unknown:
        raise CorrectionError(
            f"segment number(s) {unknown} are not segments of the AI SEG (1-{max(numbers)})"
        )


def _source_order(correction: LabelCorrection, headers: Sequence[Dataset]) -> list[str]:
    """The CT SOPInstanceUIDs in ``headers`` order, checked against the correction's frames."""
    order = [str(ds.SOPInstanceUID) for ds in headers]
    if any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in headers):
        # The payload has one label image per CT image, i.e. per single-frame instance.
        raise CorrectionError("corrections of multi-frame CT images are not supported")
    if any(
        str(ds.SeriesInstanceUID) != correction.referenced_series_instance_uid for ds in headers
    ):
        raise CorrectionError("the CT images given are not all of the corrected series")
    sizes = {(int(ds.Rows), int(ds.Columns)) for ds in headers}
    if sizes != {(correction.rows, correction.columns)}:
        raise CorrectionError("the label images' rows x columns differ from the CT images'")
    known = set(order)
    unknown = [uid for uid in correction.frames if uid not in known]
    if unknown:
        raise CorrectionError(
            f"{len(unknown)} label image(s) name a CT image that is not in the series"
        )
    missing = len(known) - len(correction.frames)
    if missing:
        raise CorrectionError(f"{missing} CT image(s) of the series have no label image")
    return order


def _edited_segments(
    ai_seg: Dataset, order: Sequence[str], corrected: npt.NDArray[np.uint8]
) -> set[int]:
    """Segment numbers whose pixels differ between the AI SEG and the correction."""
    # The AI SEG's pixels by source instance (not frame order: empty frames were omitted).
    ai = hd.seg.Segmentation.from_dataset(ai_seg, copy=True).get_pixels_by_source_instance(
        list(order), combine_segments=True, relabel=False
    )
    changed = ai != corrected
    return {int(v) for v in np.unique(np.concatenate([ai[changed], corrected[changed]]))} - {0}


def _ai_bundle(ai_seg: Dataset) -> BundleRef:
    """The model bundle the AI SEG names (its first segment's algorithm identification)."""
    for item in ai_seg.SegmentSequence:
        for algorithm in item.get("SegmentationAlgorithmIdentificationSequence", []):
            parameters = str(algorithm.get("AlgorithmParameters", ""))
            match = re.search(r"bundle_sha256=([0-9a-f]{64})", parameters)
            if match:
                return BundleRef(
                    name=str(algorithm.AlgorithmName),
                    version=str(algorithm.AlgorithmVersion),
                    sha256=match.group(1),
                )
    raise CorrectionError("the AI SEG does not identify the model bundle that wrote it")


def _reference_ai_seg(seg: hd.seg.Segmentation, ai_seg: Dataset) -> None:
    """Name ``ai_seg`` as a source (PS3.3 C.12.4) and in the instance references (C.12.2)."""
    source = Dataset()
    source.ReferencedSOPClassUID = ai_seg.SOPClassUID
    source.ReferencedSOPInstanceUID = ai_seg.SOPInstanceUID
    source.PurposeOfReferenceCodeSequence = [
        hd.sr.CodedConcept.from_code(CORRECTION_SOURCE_PURPOSE)
    ]
    seg.SourceImageSequence.append(source)
    seg.DerivationDescription = CORRECTION_DERIVATION_DESCRIPTION
    instance = Dataset()
    instance.ReferencedSOPClassUID = ai_seg.SOPClassUID
    instance.ReferencedSOPInstanceUID = ai_seg.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = ai_seg.SeriesInstanceUID
    series.ReferencedInstanceSequence = [instance]
    seg.ReferencedSeriesSequence.append(series)


def structure_volumes_ml(
    correction: LabelCorrection, ai_seg: Dataset, headers: Sequence[Dataset]
) -> Mapping[str, float]:
    """Each segment's volume in the corrected label images, in mL, by Tracking ID.

    A segment's volume is its pixel count times the voxel volume of the CT stack (pixel
    spacing times the slice step from the positions, PS3.3 C.7.6.2.1.1), through
    :func:`inference.tasks.resectability.measurements.volume_ml` as for the AI's own
    measurements. A segment the radiologist erased measures 0.

    Raises
    ------
    CorrectionError
        If the CT images do not form one regular stack, or the correction does not fit them.
    """
    order = _source_order(correction, headers)
    try:
        geometry = stack_geometry([_plane(ds) for ds in headers])
    except GeometryError as exc:
        raise CorrectionError(f"the CT images do not form one regular stack: {exc}") from exc
    stacked = np.stack([correction.frames[order[i]] for i in geometry.order], axis=-1)
    volumes = {}
    for item in ai_seg.SegmentSequence:
        name = str(item.get("TrackingID", "")) or str(item.SegmentLabel)
        volumes[name] = volume_ml(stacked == int(item.SegmentNumber), geometry.affine_lps)
    return MappingProxyType(volumes)


def _plane(ds: Dataset) -> PlaneGeometry:
    """A CT image's plane (PS3.3 C.7.6.2.1.1), checked for the number of values."""
    try:
        o = [float(v) for v in ds.ImageOrientationPatient]
        p = [float(v) for v in ds.ImagePositionPatient]
        s = [float(v) for v in ds.PixelSpacing]
    except (AttributeError, TypeError, ValueError) as exc:
        raise CorrectionError("a CT image lacks its position, orientation or spacing") from exc
    if (len(o), len(p), len(s)) != (6, 3, 2):
        raise CorrectionError("a CT image has a malformed position, orientation or spacing")
    return PlaneGeometry(
        orientation=(o[0], o[1], o[2], o[3], o[4], o[5]),
        position=(p[0], p[1], p[2]),
        pixel_spacing=(s[0], s[1]),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
    )
