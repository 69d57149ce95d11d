"""NIfTI pairs: a folder of CT images and label maps matched by name.

Two glob patterns, relative to the source folder, each with exactly one ``*``: the text the
``*`` matches is the case id, and an image and a label with the same case id are a pair
(defaults: ``images/*.nii.gz`` and ``labels/*.nii.gz``; for nnU-Net-style names
``imagesTr/*_0000.nii.gz`` and ``labelsTr/*.nii.gz``). Label maps carry values only, so the
mapping's ``[values]`` table maps them, and every structure it maps is labelled in every case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from inference.volume import Volume, read_nifti
from inference.volume_io import resample_to_reference
from training.importers.cohort_writer import ImportedCase
from training.importers.mapping import LabelMapping, remap_label_map

__all__ = [
    "DEFAULT_IMAGE_GLOB",
    "DEFAULT_LABEL_GLOB",
    "case_from_label_map",
    "pair_files",
    "read_nifti_pairs",
]

DEFAULT_IMAGE_GLOB = "images/*.nii.gz"
DEFAULT_LABEL_GLOB = "labels/*.nii.gz"

#: Largest difference between two affines' entries (mm) still read as the same grid.
_GRID_TOLERANCE_MM = 1e-3


def case_from_label_map(
    case_id: str,
    image: Volume,
    label: Volume,
    mapping: LabelMapping,
    source_labels: Mapping[int, Iterable[str]] | None = None,
) -> ImportedCase:
    """One case from a CT and a source label map (mapped, put on the CT's grid).

    A label map on the CT's grid (same shape, affines equal within 1 um) keeps its voxels;
    one on another grid is resampled through world coordinates by nearest neighbour.
    """
    array, labelled = remap_label_map(label.array, source_labels or {}, mapping)
    mapped = Volume(array, label.affine)
    if mapped.shape == image.shape and np.allclose(
        mapped.affine, image.affine, atol=_GRID_TOLERANCE_MM
    ):
        on_grid = Volume(array, image.affine)
    else:
        resampled = resample_to_reference(mapped, image, order=0)
        on_grid = Volume(np.asarray(resampled.array, dtype=np.uint8), image.affine)
    return ImportedCase(
        case_id=case_id, image=image, label=on_grid, labelled=labelled, registry_key=case_id
    )


def _pattern(glob: str, option: str) -> re.Pattern[str]:
    if glob.count("*") != 1 or "?" in glob or "[" in glob:
        raise ValueError(f"{option} must hold exactly one '*' (and no ? or [), got {glob!r}")
    head, tail = glob.split("*")
    return re.compile(re.escape(head) + "(.+)" + re.escape(tail) + "$")


def _matches(source: Path, glob: str, option: str) -> dict[str, Path]:
    pattern = _pattern(glob, option)
    found: dict[str, Path] = {}
    for path in sorted(source.glob(glob)):
        hit = pattern.match(path.relative_to(source).as_posix())
        if hit is None or path.name.startswith("."):
            continue
        found[hit.group(1)] = path
    return found


def pair_files(
    source: Path, image_glob: str = DEFAULT_IMAGE_GLOB, label_glob: str = DEFAULT_LABEL_GLOB
) -> list[tuple[str, Path, Path]]:
    """``(case id, image, label)`` for every case id both globs find, sorted by case id.

    Raises
    ------
    ValueError
        If a glob is malformed, or no pair is found.
    """
    images = _matches(source, image_glob, "--image-glob")
    labels = _matches(source, label_glob, "--label-glob")
    common = sorted(set(images) & set(labels))
    if not common:
        raise ValueError(
            f"no image/label pair in {source.name} for {image_glob!r} and {label_glob!r}"
            f" ({len(images)} images, {len(labels)} labels)"
        )
    return [(case, images[case], labels[case]) for case in common]


def read_nifti_pairs(
    source: Path,
    mapping: LabelMapping,
    image_glob: str = DEFAULT_IMAGE_GLOB,
    label_glob: str = DEFAULT_LABEL_GLOB,
) -> Iterator[ImportedCase]:
    """Yield the cases of a NIfTI-pairs folder, one at a time (see the module docstring)."""
    for case_id, image_path, label_path in pair_files(source, image_glob, label_glob):
        yield case_from_label_map(case_id, read_nifti(image_path), read_nifti(label_path), mapping)
