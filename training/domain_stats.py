"""The training cohort's ``domain`` section of ``bundle.json`` (:mod:`inference.domain`).

Each sampled training CT is read with its reference labels, the analysis cube is centred on the
reference pancreas, and :func:`inference.domain.summarise` records the spread of HU
percentiles, HU band fractions, structure volumes, SMA-SMV position and voxel spacing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inference.domain import CaseStats, reference_case_stats, summarise
from inference.preprocessing import PreprocessConfig
from inference.volume import read_nifti
from inference.volume_io import read_dicom_series
from training.dataset import CaseRecord

__all__ = ["DOMAIN_SAMPLE", "cohort_domain"]

#: Training CTs measured at most (the first ones, in the cohort's order).
DOMAIN_SAMPLE = 40


def cohort_domain(
    cases: Sequence[CaseRecord],
    preprocess: PreprocessConfig,
    *,
    source: str,
    limit: int = DOMAIN_SAMPLE,
) -> dict[str, Any]:
    """The ``domain`` section of the first ``limit`` cases that have a label map.

    Parameters
    ----------
    cases
        The training cohort.
    preprocess
        The bundle's cube.
    source
        What the cohort is (e.g. the phantom command); the sample size is appended.
    limit
        How many cases to measure at most.

    Raises
    ------
    ValueError
        If no case has a label map and an image, or a label map has no pancreas.
    OSError
        If a file cannot be read.
    """
    stats: list[CaseStats] = []
    for case in cases:
        if len(stats) >= limit:
            break
        if case.label is None:
            continue
        if case.image is not None:
            image = read_nifti(case.image)
        elif case.dicom_dir is not None:
            image = read_dicom_series(case.dicom_dir).volume
        else:
            continue
        stats.append(reference_case_stats(image, read_nifti(case.label), preprocess))
    sample = f"{source}; the first {len(stats)} of {len(cases)} CTs"
    return summarise(stats, source=sample)
