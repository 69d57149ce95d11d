"""Training cases: (CT, label map, clinical row, NCCN label) from a cohort folder.

Layout (what :func:`inference.phantom.generate_cohort` writes, and what a site provides)::

    DIR/clinical.csv            patient_id + the 17 variables (empty cell = missing)
    DIR/truth.csv               patient_id, nccn_label (0, 1, 2); other columns ignored
    DIR/<patient_id>/image.nii.gz   CT in HU          (or DIR/<patient_id>/dicom/ a DICOM series)
    DIR/<patient_id>/label.nii.gz   16-label map      (needed for training)

Preprocessing (METHOD.md section 1): a ``cube_mm`` cube (160 mm) around the pancreas (centroid
of labels 1-2 at training time; the volume centre when no label map is given, where a
localisation stage must supply the centre), sampled on an isotropic grid of ``target_size``
voxels (160 voxels = the paper's 1 mm; smaller sizes give coarser spacing for CPU training, with
a Gaussian anti-aliasing pre-filter), HU clipped to a window and z-scored within the cube.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.volume import Volume, read_nifti
from inference.volume_io import read_dicom_series, resample_to_reference
from pancreas_contracts.clinical import CLINICAL_VARIABLES, variable_by_name

__all__ = [
    "CaseRecord",
    "PreprocessConfig",
    "Preprocessed",
    "discover_cases",
    "make_augmentation",
    "preprocess_case",
    "preprocess_volume",
    "source_fingerprint",
]

_PANCREAS_LABELS = (1, 2)


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
        0 resectable, 1 borderline, 2 locally advanced.
    """

    patient_id: str
    image: Path | None
    dicom_dir: Path | None
    label: Path | None
    clinical: dict[str, float | None]
    nccn_label: int


@dataclass(frozen=True)
class PreprocessConfig:
    """How a CT is turned into the network's input cube.

    Parameters
    ----------
    target_size
        Voxels per side, a multiple of 32 (160 = the paper's 1 mm grid).
    cube_mm
        Side of the cube in mm (160 in the paper).
    hu_window
        HU range kept before z-scoring.
    """

    target_size: int = 160
    cube_mm: float = 160.0
    hu_window: tuple[float, float] = (-200.0, 400.0)

    def __post_init__(self) -> None:
        if self.target_size < 32 or self.target_size % 32:
            raise ValueError(
                f"target size must be a positive multiple of 32, got {self.target_size}"
            )
        if not self.cube_mm > 0 or not self.hu_window[0] < self.hu_window[1]:
            raise ValueError("cube size must be positive and the HU window increasing")

    @property
    def spacing_mm(self) -> float:
        """Isotropic voxel size of the input cube."""
        return self.cube_mm / self.target_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the bundle)."""
        data = asdict(self)
        data["hu_window"] = list(self.hu_window)
        data["spacing_mm"] = self.spacing_mm
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict` (extra keys ignored)."""
        lo, hi = data.get("hu_window", (-200.0, 400.0))
        return cls(int(data["target_size"]), float(data["cube_mm"]), (float(lo), float(hi)))


@dataclass(frozen=True)
class Preprocessed:
    """One case on the network grid.

    Attributes
    ----------
    image
        ``(S, S, S)`` float32, z-scored.
    label
        ``(S, S, S)`` uint8 label map, or ``None``.
    centre_mm
        RAS+ centre of the cube.
    """

    image: npt.NDArray[np.float32]
    label: npt.NDArray[np.uint8] | None
    centre_mm: tuple[float, float, float]


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


def discover_cases(data_dir: Path) -> list[CaseRecord]:
    """Read a cohort folder (see the module docstring) into case records.

    Raises
    ------
    ValueError
        On a missing table, an unknown label, or a patient without an image.
    """
    clinical = {r["patient_id"]: r for r in _read_csv(data_dir / "clinical.csv")}
    cases = []
    for row in _read_csv(data_dir / "truth.csv"):
        pid = row.get("patient_id", "").strip()
        try:
            label = int(row["nccn_label"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"truth.csv: no valid nccn_label for {pid!r}") from exc
        if label not in (0, 1, 2):
            raise ValueError(f"truth.csv: nccn_label of {pid} must be 0, 1 or 2")
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
            )
        )
    if not cases:
        raise ValueError(f"no cases in {data_dir / 'truth.csv'}")
    return cases


def _cube_reference(centre: npt.NDArray[np.float64], config: PreprocessConfig) -> Volume:
    size, spacing = config.target_size, config.spacing_mm
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = centre - spacing * (size - 1) / 2.0
    return Volume(np.zeros((size, size, size), dtype=np.uint8), affine)


def _pancreas_centre(label: Volume) -> npt.NDArray[np.float64] | None:
    mask = np.isin(np.asarray(label.array), _PANCREAS_LABELS)
    if not mask.any():
        return None
    index = np.array(ndimage.center_of_mass(mask), dtype=np.float64)
    world: npt.NDArray[np.float64] = label.voxel_to_world(index[None, :])[0]
    return world


def preprocess_volume(
    image: Volume,
    config: PreprocessConfig,
    label: Volume | None = None,
    centre_mm: Sequence[float] | None = None,
) -> Preprocessed:
    """Crop, resample and normalise one CT (and its label map).

    Parameters
    ----------
    image
        CT in HU, any orientation.
    config
        Target grid and intensity window.
    label
        Label map on any grid in the same world space; its pancreas centroid is the cube centre
        unless ``centre_mm`` is given.
    centre_mm
        RAS+ cube centre; default: pancreas centroid, else the volume centre.

    Returns
    -------
    Preprocessed
        The input cube (and label cube).
    """
    if centre_mm is not None:
        centre = np.asarray(centre_mm, dtype=np.float64)
    else:
        found = _pancreas_centre(label) if label is not None else None
        middle = (np.asarray(image.shape, dtype=np.float64) - 1) / 2
        centre = found if found is not None else image.voxel_to_world(middle[None, :])[0]
    reference = _cube_reference(centre, config)
    sigma = [max(0.0, 0.5 * (config.spacing_mm / s - 1.0)) for s in image.spacing]
    array = np.asarray(image.array, dtype=np.float32)
    if max(sigma) > 0:
        array = ndimage.gaussian_filter(array, sigma=sigma, mode="nearest")
    cube = resample_to_reference(Volume(array, image.affine), reference, 1, fill_value=-1024.0)
    values = np.clip(np.asarray(cube.array, dtype=np.float32), *config.hu_window)
    std = float(values.std())
    values = (values - float(values.mean())) / (std if std > 1e-6 else 1.0)
    label_cube = None
    if label is not None:
        labels = resample_to_reference(label, reference, 0, fill_value=0)
        label_cube = np.asarray(labels.array, dtype=np.uint8)
    c = (float(centre[0]), float(centre[1]), float(centre[2]))
    return Preprocessed(values.astype(np.float32), label_cube, c)


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


def make_augmentation(seed: int) -> Any:
    """The paper's MONAI augmentations over ``{"image", "label"}`` channel-first arrays.

    Random flips (each axis, p = 0.5), random 90-degree rotations, affine rotation +-0.1 rad,
    Gaussian noise (sigma 0.01) and intensity shift (+-0.1), seeded.
    """
    # local imports: MONAI is heavy and only training needs it
    from monai.transforms.compose import Compose
    from monai.transforms.intensity.dictionary import RandGaussianNoised, RandShiftIntensityd
    from monai.transforms.spatial.dictionary import RandAffined, RandFlipd, RandRotate90d

    keys = ["image", "label"]
    rotate = (0.1, 0.1, 0.1)
    transform = Compose(
        [
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
        ]
    )  # fmt: skip
    transform.set_random_state(seed=seed % (2**32))
    return transform
