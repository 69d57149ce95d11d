"""A small phantom CT and a staging bundle that finds a tumor in it (the optional models' tests).

The test bundle labels its whole 160 mm cube tumor, so the models that need a tumor (lymph
nodes, survival) and the SEG writers get one; the 320 x 320 x 240 mm scan at 2 x 2 x 4 mm
holds the whole cube.
"""

from __future__ import annotations

from pathlib import Path

from phantom import PhantomOptions, generate_cohort
from training.structure_bundle import build_test_bundle


def small_phantom_series(folder: Path) -> Path:
    """One phantom patient's DICOM folder (seed 3) written under ``folder``."""
    options = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)
    return generate_cohort(folder, 1, 3, options).patients[0].dicom_dir


def tumor_staging_bundle(folder: Path) -> Path:
    """A one-member staging bundle whose network labels its whole cube tumor."""
    return build_test_bundle(folder / "b", fill_label="tumor", members=1)
