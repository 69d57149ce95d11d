"""A processed phantom study for the OHIF extension's tests: CT + SEGs + TID 1500 SR.

The phantom's ``label.nii.gz`` stands in for the predicted segmentation, its tumor label for the
PDAC detector's reported lesion, two hand-placed spheres beside the pancreas for the lymph-node
model's nodes (issue 24), a hand-made :class:`SurvivalPrognosis` (high risk, issue 25) and a
hand-made :class:`AnalysisResult` (with the phantom's true contact angles and tumor volume) for
the analysis; the SEG, the lesion SEG
(``seg-detection.dcm``, series 9004), the node SEG (``seg-lymph-nodes.dcm``, series 9005) and
the SR come from the node's own writers (:mod:`inference.seg_writer`,
:mod:`inference.lymph_node_seg`, :mod:`inference.sr_writer`, called as :mod:`inference.analysis`
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
import numpy.typing as npt
import pydicom
from pydicom.uid import generate_uid

from inference import read_dicom_series, read_nifti
from inference.lymph_node_seg import build_lymph_node_seg
from inference.seg_writer import build_lesion_seg, write_seg
from inference.sr_writer import write_sr
from inference.volume import Volume
from pancreas_contracts.detection import DetectedLesion, Detection
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.lymph_nodes import LymphNodeAssessment, LymphNodeFinding
from pancreas_contracts.prognosis import (
    KaplanMeierCurve,
    ModelProbabilities,
    StageInput,
    SurvivalPrognosis,
)
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
#: The lymph-node model's bundle (the node SEG's algorithm identification).
NODE_MODEL = BundleRef(name="lymph-nodes-phantom", version="0.1.0", sha256="ef" * 32)


#: The survival model's answer (result 1.7): high risk, death by 1/2/3 years 0.42/0.71/0.86,
#: the T from the node's staging, the N from the lymph-node model, the M missing; two short
#: reference Kaplan-Meier curves as the bundle's training groups would give them.
PROGNOSIS = SurvivalPrognosis(
    model_version="survival-phantom 0.1.0",
    death_probability=(0.42, 0.71, 0.86),
    risk_group="high",
    risk_cutoff=0.8,
    components={
        "radiomics": ModelProbabilities(death_probability=(0.40, 0.66, 0.81)),
        "densenet": ModelProbabilities(death_probability=(0.45, 0.74, 0.88)),
        "clinical": ModelProbabilities(death_probability=(0.35, 0.62, 0.79)),
    },
    staging={
        "T": StageInput(value="T3", source="node"),
        "N": StageInput(value="N+", source="lymph-node-model"),
        "M": StageInput(source="missing"),
    },
    reference_curves=(
        KaplanMeierCurve(
            label="high risk",
            months=(0.0, 6.0, 12.0, 24.0, 36.0),
            survival=(1.0, 0.8, 0.55, 0.3, 0.15),
        ),
        KaplanMeierCurve(
            label="low risk",
            months=(0.0, 6.0, 12.0, 24.0, 36.0),
            survival=(1.0, 0.95, 0.85, 0.65, 0.5),
        ),
    ),
    inputs_used=("ct", "tumor_mask", "sex", "age", "T", "N"),
    inputs_missing=("M", "ca19_9_baseline"),
)


@dataclass(frozen=True)
class ProcessedStudy:
    """A phantom CT series with its SEG, lesion SEG, SR and ``result.json``."""

    ct_files: tuple[Path, ...]
    seg_path: Path
    sr_path: Path
    #: The PDAC detector's lesion SEG (``seg-detection.dcm``).
    lesion_seg_path: Path
    #: The lymph-node SEG (``seg-lymph-nodes.dcm``, one segment per node).
    node_seg_path: Path
    result: AnalysisResult
    result_path: Path
    #: Tumor centroid in DICOM patient coordinates (LPS, mm).
    tumor_center_lps: tuple[float, float, float]

    def files(self) -> list[Path]:
        """Every DICOM file of the study (CT slices, SEG, SR, lesion SEG, node SEG)."""
        return [
            *self.ct_files, self.seg_path, self.sr_path, self.lesion_seg_path, self.node_seg_path
        ]  # fmt: skip

    def description(self) -> dict[str, Any]:
        """What the browser tests need to know (``study.json``)."""
        return {
            "study_uid": self.result.study_uid,
            "series_uid": self.result.series_uid,
            "seg_sop_uid": self.result.outputs.seg_sop_uid,
            "sr_sop_uid": self.result.outputs.sr_sop_uid,
            "detection_seg_sop_uid": self.result.outputs.detection_seg_sop_uid,
            "lymph_node_seg_sop_uid": self.result.outputs.lymph_node_seg_sop_uid,
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
    node_map, lymph_nodes = _lymph_nodes(label)
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
        lymph_nodes=lymph_nodes,
        prognosis=PROGNOSIS,
        warnings=("phantom study: synthetic anatomy",),
    )
    seg_path = out / "seg.dcm"
    seg_uid = write_seg(label, list(files), draft, seg_path)
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    # The node SEG as inference.analysis writes it (one segment per node, in native order);
    # the SR's node groups reference its segments.
    node_uid = generate_uid()
    node_seg = build_lymph_node_seg(
        series.to_native(node_map), lymph_nodes.nodes, headers, NODE_MODEL,
        sop_instance_uid=node_uid,
    )  # fmt: skip
    node_seg_path = out / "seg-lymph-nodes.dcm"
    node_seg.save_as(node_seg_path)
    sr_path = out / "sr.dcm"
    sr_uid = write_sr(draft, seg_path, list(files), sr_path, lymph_node_seg=node_seg_path)
    # The lesion SEG as inference.analysis writes it: the detector's lesion map (here the
    # phantom's tumor, lesion 1) in the series' native order, its lesions' probabilities.
    lesion_uid = generate_uid()
    lesion_seg = build_lesion_seg(
        series.to_native(_lesion_map(label)),
        [lesion.probability for lesion in detection.lesions],
        headers,
        DETECTOR,
        sop_instance_uid=lesion_uid,
    )
    lesion_seg_path = out / "seg-detection.dcm"
    lesion_seg.save_as(lesion_seg_path)
    result = draft.model_copy(
        update={
            "outputs": draft.outputs.model_copy(
                update={
                    "seg_sop_uid": seg_uid,
                    "sr_sop_uid": sr_uid,
                    "detection_seg_sop_uid": lesion_uid,
                    "lymph_node_seg_sop_uid": node_uid,
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
    return ProcessedStudy(
        files, seg_path, sr_path, lesion_seg_path, node_seg_path, result, result_path, lps
    )


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


#: The hand-placed nodes: (node_id, station, radius mm, probability, suspicious, mm above
#: the pancreas' middle slice). On different slices, so that a jump to the wrong one shows.
_NODES: tuple[tuple[int, str, float, float, bool, float], ...] = (
    (1, "8a", 6.5, 0.81, True, 0.0),
    (2, "14p", 4.0, 0.12, False, 9.0),
)


def _lymph_nodes(label: Volume) -> tuple[Volume, LymphNodeAssessment]:
    """Two nodes beside the pancreas (``node_id`` where each is) and the model's answer.

    Each node is a sphere in the label map's background (3 mm of background around it, so the
    anatomical SEG never colours it), node 1 in the pancreas' middle slice and node 2 9 mm
    above it, each at the closest such place to the pancreas, 30 mm or more from the other:
    node 1 suspicious (13 mm short axis), node 2 not (8 mm).
    """
    array = np.asarray(label.array)
    spacing = np.asarray(label.spacing, dtype=float)
    shape = np.asarray(array.shape)
    pancreas = np.round(np.argwhere(array == label_by_name("pancreas").value).mean(axis=0)).astype(
        int
    )
    node_map = np.zeros(array.shape, dtype=np.uint8)
    step = np.maximum(np.round(3.0 / spacing), 1).astype(int)
    offsets = sorted(
        ((dx, dy) for dx in range(-80, 81, int(step[0])) for dy in range(-80, 81, int(step[1]))),
        key=lambda o: (o[0] * spacing[0]) ** 2 + (o[1] * spacing[1]) ** 2,
    )
    placed: list[npt.NDArray[np.int64]] = []
    findings = []
    for node_id, station, radius, probability, suspicious, above_mm in _NODES:
        reach = np.ceil((radius + 3.0) / spacing).astype(int)
        dz = round(above_mm / spacing[2])
        for dx, dy in offsets:
            centre = pancreas + np.asarray((dx, dy, dz))
            low, high = centre - reach, centre + reach + 1
            if (low < 0).any() or (high > shape).any():
                continue
            if any(np.sqrt((((c - centre) * spacing) ** 2).sum()) < 30.0 for c in placed):
                continue
            box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
            ranges = zip(low, high, centre, spacing, strict=True)
            axes = [(np.arange(a, b) - c) * s for a, b, c, s in ranges]
            distance = np.sqrt(sum(np.meshgrid(*[a**2 for a in axes], indexing="ij")))
            if array[box][distance <= radius + 3.0].any():
                continue
            node_map[box][distance <= radius] = node_id
            placed.append(centre)
            break
        else:  # pragma: no cover - the phantom always has room beside the pancreas
            raise RuntimeError(f"no room for lymph node {node_id}")
        x, y, z = label.voxel_to_world(centre.astype(float))[0]
        volume_ml = float((node_map == node_id).sum() * spacing.prod() / 1000.0)
        findings.append(
            LymphNodeFinding(
                node_id=node_id, station=station, centre_lps_mm=(-x, -y, z),
                short_axis_mm=2 * radius, long_axis_mm=2 * radius + 2.0,
                volume_ml=round(volume_ml, 3), probability=probability, suspicious=suspicious,
            )
        )  # fmt: skip
    assessment = LymphNodeAssessment(
        model_version=f"{NODE_MODEL.name} {NODE_MODEL.version}", n_positive_probability=0.71,
        threshold=0.5, n_estimate="N+", nodes=tuple(findings), inputs_used=("ct", "attention"),
    )  # fmt: skip
    return Volume(node_map, np.asarray(label.affine, dtype=np.float64)), assessment
