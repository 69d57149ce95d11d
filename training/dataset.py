"""Training cases: (CT, label map, clinical row, NCCN label) from a cohort folder.

Layout (what :func:`phantom.generate_cohort` writes, and what a site provides)::

    DIR/clinical.csv            patient_id + the 17 variables (empty cell = missing)
    DIR/truth.csv               patient_id, nccn_label (0, 1, 2; empty = unknown), optionally
                                has_tumor (1, 0; empty = unknown), labelled (the structures
                                label.nii.gz annotates) and label_source (where a reviewed
                                case's labels came from); other columns (import_source, ...)
                                ignored
    DIR/<patient_id>/image.nii.gz   CT in HU          (or DIR/<patient_id>/dicom/ a DICOM series)
    DIR/<patient_id>/label.nii.gz   16-label map      (needed for training)

Preprocessing is the runtime's (:func:`inference.preprocessing.preprocess_volume`): a case is
cut to the same cube for training as for analysis.

Tumor-free patients: where truth.csv has a ``has_tumor`` column, a row with ``has_tumor`` 0
has an empty ``nccn_label`` (there is nothing to stage) and its label map has no tumor
voxel; its record's ``nccn_label`` is :data:`NO_TUMOR`. Such patients train the segmentation
(the network learns "no tumor") and are left out of the NCCN classification loss and
metrics. A truth.csv without the column is read as before: every patient has a tumor.

Partial labels (imported public cohorts: MSD Pancreas labels pancreas and tumor, NIH
Pancreas-CT the pancreas alone): truth.csv's optional ``labelled`` column names the
structures (:data:`pancreas_contracts.labels.LABELS` names, background excluded) a case's
label map annotates, joined by ``;`` (``pancreas;tumor``). An empty cell, or no column, means
all 15. A structure not named is *not labelled*: its voxels are 0 in the file but mean
"unknown", not background; training's segmentation loss marginalises it
(:class:`training.losses.SegmentationLoss`) and every per-structure metric leaves the case out
for it. A tumor-free case (``has_tumor`` 0) has its tumor labelled whatever the column says:
"no tumor anywhere" is an annotation.

Unknown NCCN category: an empty ``nccn_label`` where ``has_tumor`` is not 0 (1, or empty =
unknown) gives :data:`NCCN_UNKNOWN`. Such a case trains the segmentation and, like a
tumor-free one, is left out of the classification loss, of model selection and of every NCCN
metric; it is *not* counted as tumor-free, and it is a stratum of its own in the folds.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.preprocessing import PreprocessConfig, Preprocessed, preprocess_volume
from inference.volume import read_nifti
from inference.volume_io import read_dicom_series
from pancreas_contracts.clinical import CLINICAL_VARIABLES, variable_by_name
from pancreas_contracts.labels import LABELS, NUM_CLASSES, label_by_name
from training.config import Augmentations

__all__ = [
    "ALL_LABELLED",
    "NCCN_UNKNOWN",
    "NO_TUMOR",
    "CaseRecord",
    "PreprocessConfig",
    "Preprocessed",
    "discover_cases",
    "has_category",
    "label_provenance",
    "labelled_names",
    "make_augmentation",
    "preprocess_case",
    "preprocess_volume",
    "source_fingerprint",
]

_TUMOR_VALUE = label_by_name("tumor").value
NO_TUMOR = -1
"""``nccn_label`` (and training target) of a tumor-free patient: no NCCN category.

Negative, so it is the cross-entropy's ignored class (:class:`training.losses.
ClassificationLoss`) and a stratum of its own in the stratified folds."""

NCCN_UNKNOWN = -2
"""``nccn_label`` (and training target) of a patient whose NCCN category is not known.

Imported public cohorts have or may have a tumor but no staging. Like :data:`NO_TUMOR` it is
ignored by the classification loss and every NCCN metric (:func:`has_category`); unlike it,
the patient is not tumor-free. Its own stratum in the stratified folds."""

ALL_LABELLED: frozenset[int] = frozenset(range(1, NUM_CLASSES))
"""The labelled set of a fully annotated case: every structure but the background."""

_BY_NAME = {label.name: label.value for label in LABELS if label.value}
_NAMES = {value: name for name, value in _BY_NAME.items()}


def has_category(targets: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Which targets are an NCCN category (not :data:`NO_TUMOR`, not :data:`NCCN_UNKNOWN`)."""
    known: npt.NDArray[np.bool_] = np.asarray(targets) >= 0
    return known


def labelled_names(labelled: frozenset[int]) -> str:
    """A labelled set as truth.csv writes it (``pancreas;tumor``), in label order."""
    return ";".join(_NAMES[value] for value in sorted(labelled))


@dataclass(frozen=True)
class CaseRecord:
    """One patient of a training cohort.

    Attributes
    ----------
    patient_id
        Folder name and CSV key.
    image
        NIfTI CT, or ``None`` when ``dicom_dir`` is used.
    dicom_dir
        Folder with one DICOM CT series, or ``None``.
    label
        NIfTI label map (16 labels), or ``None``.
    clinical
        Raw clinical values in model units, ``None`` = missing (implausible values dropped).
    nccn_label
        0 resectable, 1 borderline, 2 locally advanced; :data:`NO_TUMOR` when tumor-free,
        :data:`NCCN_UNKNOWN` when not known.
    label_source
        Where the labels came from: truth.csv's optional ``label_source`` column (a reviewed
        case's ``board``, ``review-override``, ``review-correction``, ``review-agree``, see
        :mod:`training.review_export`), else ``cohort``.
    labelled
        Label values (1 to 15) that ``label`` annotates; :data:`ALL_LABELLED` by default.
        Voxels of another structure are 0 in the file and mean unknown, not background.
    """

    patient_id: str
    image: Path | None
    dicom_dir: Path | None
    label: Path | None
    clinical: dict[str, float | None]
    nccn_label: int
    label_source: str = "cohort"
    labelled: frozenset[int] = ALL_LABELLED

    def __post_init__(self) -> None:
        if self.nccn_label not in (NCCN_UNKNOWN, NO_TUMOR, 0, 1, 2):
            raise ValueError(
                f"patient {self.patient_id}: nccn_label must be 0, 1, 2, NO_TUMOR or NCCN_UNKNOWN"
            )
        if not isinstance(self.labelled, frozenset) or not self.labelled <= ALL_LABELLED:
            raise ValueError(
                f"patient {self.patient_id}: labelled must be a frozenset of label values "
                f"1 to {NUM_CLASSES - 1}, got {self.labelled!r}"
            )

    @property
    def has_tumor(self) -> bool:
        """Whether the patient is not known to be tumor-free (a tumor, or it may have one)."""
        return self.nccn_label != NO_TUMOR

    @property
    def tumor_status_known(self) -> bool:
        """Whether it is known if the patient has a tumor: an NCCN category or tumor-free, or
        the tumor labelled (an import's label map says where the tumor is, or that none is)."""
        return self.nccn_label != NCCN_UNKNOWN or _TUMOR_VALUE in self.labelled

    @property
    def partial(self) -> bool:
        """Whether the label map annotates only some of the 15 structures."""
        return self.labelled != ALL_LABELLED


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise ValueError(f"missing {path.name} in {path.parent}")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _clinical_value(name: str, cell: str | None) -> float | None:
    if cell is None or not cell.strip():
        return None
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if variable_by_name(name).is_valid(value) else None


def source_fingerprint(case: CaseRecord) -> str:
    """Short digest of where a case's files are and their sizes and modification times.

    Part of the preprocessing caches' file names (training cubes, localiser grids), so that
    another cohort whose patients have the same IDs (every phantom cohort names them
    PHANTOM-0001...), or a case whose files changed, is preprocessed again instead of being
    served another case's cached arrays.
    """
    files: list[Path] = []
    for path in (case.image, case.label):
        if path is not None:
            files.append(path)
    if case.dicom_dir is not None:
        files.extend(sorted(p for p in case.dicom_dir.iterdir() if p.is_file()))
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _nccn_label(pid: str, row: dict[str, str]) -> int:
    """A truth.csv row's NCCN label: :data:`NO_TUMOR` where ``has_tumor`` is 0, else
    :data:`NCCN_UNKNOWN` where ``nccn_label`` is empty."""
    has_tumor = (row.get("has_tumor") or "").strip()
    if has_tumor not in ("0", "1", ""):
        raise ValueError(f"truth.csv: has_tumor of {pid!r} must be 0, 1 or empty")
    cell = (row.get("nccn_label") or "").strip()
    if has_tumor == "0":
        if cell:
            raise ValueError(f"truth.csv: tumor-free patient {pid!r} has an nccn_label")
        return NO_TUMOR
    if not cell:
        return NCCN_UNKNOWN
    try:
        label = int(cell)
    except ValueError as exc:
        raise ValueError(f"truth.csv: no valid nccn_label for {pid!r}") from exc
    if label not in (0, 1, 2):
        raise ValueError(f"truth.csv: nccn_label of {pid} must be 0, 1 or 2")
    return label


def _labelled(pid: str, row: dict[str, str], nccn_label: int) -> frozenset[int]:
    """A truth.csv row's labelled set (empty cell or no column: all)."""
    cell = (row.get("labelled") or "").strip()
    if not cell:
        return ALL_LABELLED
    values = set()
    for name in (part.strip() for part in cell.split(";")):
        if not name:
            continue
        if name not in _BY_NAME:
            known = ", ".join(_BY_NAME)
            raise ValueError(
                f"truth.csv: labelled of {pid!r} names {name!r}, not a structure ({known})"
            )
        values.add(_BY_NAME[name])
    if nccn_label == NO_TUMOR:
        values.add(_BY_NAME["tumor"])  # "no tumor anywhere" is an annotation of the tumor
    return frozenset(values)


def discover_cases(data_dir: Path) -> list[CaseRecord]:
    """Read a cohort folder (see the module docstring) into case records.

    Raises
    ------
    ValueError
        On a missing table or column, an unknown label or structure name, or a patient
        without an image.
    """
    clinical = {r["patient_id"]: r for r in _read_csv(data_dir / "clinical.csv")}
    cases = []
    rows = _read_csv(data_dir / "truth.csv")
    if rows and "nccn_label" not in rows[0]:
        raise ValueError(f"truth.csv in {data_dir} has no nccn_label column")
    for row in rows:
        pid = row.get("patient_id", "").strip()
        label = _nccn_label(pid, row)
        folder = data_dir / pid
        image = folder / "image.nii.gz"
        dicom = folder / "dicom"
        if not image.is_file() and not dicom.is_dir():
            raise ValueError(f"patient {pid}: no image.nii.gz and no dicom/ folder")
        seg = folder / "label.nii.gz"
        values = clinical.get(pid, {})
        cases.append(
            CaseRecord(
                patient_id=pid,
                image=image if image.is_file() else None,
                dicom_dir=None if image.is_file() else dicom,
                label=seg if seg.is_file() else None,
                clinical={
                    v.name: _clinical_value(v.name, values.get(v.name)) for v in CLINICAL_VARIABLES
                },
                nccn_label=label,
                label_source=(row.get("label_source") or "").strip() or "cohort",
                labelled=_labelled(pid, row, label),
            )
        )
    if not cases:
        raise ValueError(f"no cases in {data_dir / 'truth.csv'}")
    return cases


def label_provenance(cases: list[CaseRecord]) -> str:
    """How many cases' labels came from the cohort and how many from radiologist review.

    The training report prints it (issue 26: "the training report says how many labels came
    from review"), e.g. ``12 from radiologist review (board 3, review-correction 4,
    review-agree 5), 288 from the cohort``.
    """
    sources = Counter(case.label_source for case in cases)
    cohort = sources.pop("cohort", 0)
    reviewed = sum(sources.values())
    if not reviewed:
        return f"all {cohort} from the cohort (none from radiologist review)"
    detail = ", ".join(f"{name} {count}" for name, count in sorted(sources.items()))
    return f"{reviewed} from radiologist review ({detail}), {cohort} from the cohort"


def preprocess_case(record: CaseRecord, config: PreprocessConfig) -> Preprocessed:
    """Read and preprocess one case (the label map, when present, fixes the centre).

    Raises
    ------
    ValueError
        If the image cannot be read (volume errors are ``ValueError``).
    OSError
        On unreadable files.
    """
    if record.image is not None:
        image = read_nifti(record.image)
    elif record.dicom_dir is not None:
        image = read_dicom_series(record.dicom_dir).volume
    else:
        raise ValueError(f"patient {record.patient_id}: no image")
    label = read_nifti(record.label) if record.label is not None else None
    return preprocess_volume(image, config, label)


def make_augmentation(seed: int, augmentations: Augmentations | None = None) -> Any:
    """The paper's MONAI augmentations over ``{"image", "label"}`` channel-first arrays.

    Random flips (each axis, p = 0.5), random 90-degree rotations, affine rotation +-0.1 rad,
    Gaussian noise (sigma 0.01) and intensity shift (+-0.1), seeded; with ``augmentations``,
    also those of them switched on (:func:`training._augment.extra_transforms`: the label-wise
    intensities before the paper's chain, spacing, intensity, smoothing and noise after it).
    With none switched on the chain, and every random draw, is the paper's alone.
    """
    # local imports: MONAI is heavy and only training needs it
    from monai.transforms.compose import Compose
    from monai.transforms.intensity.dictionary import RandGaussianNoised, RandShiftIntensityd
    from monai.transforms.spatial.dictionary import RandAffined, RandFlipd, RandRotate90d

    from training._augment import extra_transforms

    keys = ["image", "label"]
    rotate = (0.1, 0.1, 0.1)
    before, after = extra_transforms(augmentations or Augmentations())
    transform = Compose(
        [
            *before,
            RandFlipd(keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            RandFlipd(keys, prob=0.5, spatial_axis=2),
            RandRotate90d(keys, prob=0.5, max_k=3, spatial_axes=(0, 1)),
            RandAffined(
                keys, prob=0.5, rotate_range=rotate, mode=("bilinear", "nearest"),
                padding_mode="border",
            ),
            RandGaussianNoised("image", prob=0.5, std=0.01),
            RandShiftIntensityd("image", prob=0.5, offsets=0.1),
            *after,
        ]
    )  # fmt: skip
    transform.set_random_state(seed=seed % (2**32))
    return transform
