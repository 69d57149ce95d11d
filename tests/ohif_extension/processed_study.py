"""A processed phantom study for the OHIF extension's tests: CT + SEG + lesion SEG + TID 1500 SR.

The phantom's ``label.nii.gz`` stands in for the predicted segmentation, its tumor label for the
PDAC detector's reported lesion and a hand-made :class:`AnalysisResult` (with the phantom's true
contact angles and tumor volume) for the analysis; the SEG, the lesion SEG
(``seg-detection.dcm``, series 9004) and the SR come from the node's own writers
(:mod:`inference.seg_writer`, :mod:`inference.sr_writer`, called as :mod:`inference.analysis`
calls them), exactly as the pipeline writes them.

``python -m tests.ohif_extension.processed_study OUT`` writes one (and prints its
``study.json``); the e2e test and ``ohif-extension/test/fixtures`` use the same function.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from pydicom.uid import generate_uid

from inference import read_dicom_series, read_nifti
from inference._analysis_outputs import DetectionSegTarget, write_detection_seg
from inference._writer_common import load_source_headers
from inference.seg_writer import write_seg
from inference.sr_writer import write_sr
from inference.volume import Volume
from pancreas_contracts.detection import DetectedLesion, Detection
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import (
    CATEGORY_LABELS,
    AnalysisResult,
    BundleRef,
    Category,
    ClinicalUse,
    Localisation,
    Measurements,
    SourceSeries,
)
from phantom import PhantomOptions, generate_cohort

_Label = Literal["resectable", "borderline", "locally advanced"]
BUNDLE = BundleRef(name="pancreas-ai-phantom", version="0.3.1", sha256="ab" * 32)
#: The PDAC detector's bundle (the lesion SEG's algorithm identification).
DETECTOR = BundleRef(name="pdac-detection-phantom", version="0.1.0", sha256="cd" * 32)


@dataclass(frozen=True)
class ProcessedStudy:
    """A phantom CT series with its SEG, lesion SEG, SR and ``result.json``."""

    ct_files: tuple[Path, ...]
    seg_path: Path
    sr_path: Path
    #: The PDAC detector's lesion SEG (``seg-detection.dcm``).
    lesion_seg_path: Path
    result: AnalysisResult
    result_path: Path
    #: Tumor centroid in DICOM patient coordinates (LPS, mm).
    tumor_center_lps: tuple[float, float, float]

    def files(self) -> list[Path]:
        """Every DICOM file of the study (CT slices, SEG, SR, lesion SEG)."""
        return [*self.ct_files, self.seg_path, self.sr_path, self.lesion_seg_path]

    def description(self) -> dict[str, Any]:
        """What the browser tests need to know (``study.json``)."""
        return {
            "study_uid": self.result.study_uid,
            "series_uid": self.result.series_uid,
            "seg_sop_uid": self.result.outputs.seg_sop_uid,
            "sr_sop_uid": self.result.outputs.sr_sop_uid,
            "detection_seg_sop_uid": self.result.outputs.detection_seg_sop_uid,
            "tumor_center_lps": list(self.tumor_center_lps),
            "result": json.loads(self.result.to_json()),
        }


#: The small phantom of the panel tests: 178 x 178 pixels x 24 slices of 3 mm.
SMALL = PhantomOptions(fov_mm=(160.0, 160.0, 72.0), pixel_spacing=0.9, slice_thickness=3.0)


def make_processed_study(
    out: Path, seed: int = 5, options: PhantomOptions = SMALL
) -> ProcessedStudy:
    """Generate the phantom under ``out`` and write its SEG, lesion SEG, SR and ``result.json``.

    ``options`` sets the size: :data:`SMALL` by default; ``PhantomOptions()`` with seed 7 is
    the demo's study (427 x 427 pixels x 200 slices of 1 mm).
    """
    (patient,) = generate_cohort(out / "phantom", n=1, seed=seed, options=options)
    files = tuple(sorted(patient.dicom_dir.glob("*.dcm")))
    series = read_dicom_series(files)
    label = read_nifti(patient.files.label)
    plan = patient.plan
    rule = plan.rule_category
    network = (rule + 1) % 3  # disagree with the rule, so the panel shows its warning
    others = iter((0.12, 0.18))
    probabilities = [0.7 if i == network else next(others) for i in range(3)]
    missing = tuple(n for n, v in plan.clinical.values.items() if v is None)[:3] or ("albumin",)
    detection = _detection(label)
    draft = AnalysisResult(
        study_uid=series.study_instance_uid,
        series_uid=series.series_instance_uid,
        job_id="job-e2e",
        bundle=BUNDLE,
        category=Category(
            label=cast(_Label, CATEGORY_LABELS[network]),
            probabilities=(probabilities[0], probabilities[1], probabilities[2]),
            uncertainty=0.042,
        ),
        rule_category=cast(_Label, CATEGORY_LABELS[rule]),
        disagreement=network != rule,
        measurements=Measurements(
            tumor_volume_ml=round(patient.tumor_volume_ml, 3),
            tumor_max_diameter_mm=27.25,
            contact_deg={k: round(v, 1) for k, v in plan.angles.items()},
        ),
        clinical=ClinicalUse(
            used=("age", "sex", "ca19_9", "bilirubin"),
            missing=missing,
            imputed=missing[:1],
            knocked_out=False,
            registry_status="found",
        ),
        localisation=Localisation(found=True, confidence=0.91, box_mm=(0, 0, 0, 80, 80, 60)),
        source=SourceSeries(instance_count=len(files), series_version=1),
        detection=detection,
        warnings=("phantom study: synthetic anatomy",),
    )
    seg_path = out / "seg.dcm"
    seg_uid = write_seg(label, list(files), draft, seg_path)
    sr_path = out / "sr.dcm"
    sr_uid = write_sr(draft, seg_path, list(files), sr_path)
    # The lesion SEG as inference.analysis writes it: the detector's lesion map (here the
    # phantom's tumor, lesion 1) in the series' native order, its lesions' probabilities.
    lesion_uid = generate_uid()
    lesion_seg_path = write_detection_seg(
        series.to_native(_lesion_map(label)),
        [lesion.probability for lesion in detection.lesions],
        load_source_headers(list(files), series.series_instance_uid),
        DETECTOR,
        DetectionSegTarget(out, lesion_uid),
        {},
    )
    result = draft.model_copy(
        update={
            "outputs": draft.outputs.model_copy(
                update={
                    "seg_sop_uid": seg_uid,
                    "sr_sop_uid": sr_uid,
                    "detection_seg_sop_uid": lesion_uid,
                }
            )
        }
    )
    result_path = out / "result.json"
    result_path.write_text(result.to_json(), encoding="utf-8")
    tumor = np.argwhere(np.asarray(label.array) == label_by_name("tumor").value)
    centre = np.append(tumor.mean(axis=0), 1.0)
    ras = np.asarray(label.affine, dtype=float) @ centre
    lps = (-float(ras[0]), -float(ras[1]), float(ras[2]))
    return ProcessedStudy(files, seg_path, sr_path, lesion_seg_path, result, result_path, lps)


def main(argv: list[str]) -> int:
    """Write a processed study to ``argv[1]`` and print its description."""
    if len(argv) != 2:
        print("usage: python -m tests.ohif_extension.processed_study OUT")
        return 2
    study = make_processed_study(Path(argv[1]))
    print(json.dumps(study.description(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))


def _lesion_map(label: Volume) -> Volume:
    """The detector's lesion map: 1 where the phantom's tumor is (its one reported lesion)."""
    tumor = np.asarray(label.array) == label_by_name("tumor").value
    return Volume(tumor.astype(np.uint8), np.asarray(label.affine, dtype=np.float64))


def _detection(label: Volume) -> Detection:
    """A detector's answer with one lesion at the tumor's centre (what the panel shows)."""
    tumor = np.argwhere(label.array == label_by_name("tumor").value)
    x, y, z = label.voxel_to_world(tumor.mean(axis=0))[0]
    lesion = DetectedLesion(
        centre_lps_mm=(round(-x, 1), round(-y, 1), round(z, 1)),
        diameter_mm=24.0,
        volume_ml=3.2,
        probability=0.93,
    )
    return Detection(
        model_version="pdac-detection-phantom 0.1.0", pdac_likelihood=0.91,
        classification=0.89, detection_max=0.93, threshold=0.5, detected=True,
        lesions=(lesion,), agreement="agree", distance_mm=0.0,
    )  # fmt: skip
