"""Study analysis end to end: one CT series in, DICOM-SEG + TID 1500 SR + PDF + ``result.json`` out.

Pipeline (timed per stage in ``result.timings_s``):

1. ``read``: the DICOM series (:func:`inference.volume_io.read_dicom_series`) or a NIfTI file.
2. ``localise``: the coarse pancreas localisation (:class:`Localiser`): the bundle's learned
   localiser when it ships one (a small U-Net on the whole CT at 5 mm,
   :mod:`inference.localiser`), else :class:`LandmarkLocaliser` (anatomical landmarks).
   Both give a confidence; ``result.localisation.method`` names the one that ran. Uncertain
   localisation is reported and warned about, never hidden.
3. ``preprocess``: the bundle's cube (160 mm) around it
   (:func:`inference.preprocessing.preprocess_volume`); a cube partly outside the scan is padded
   with a warning.
4. ``inference``: every bundle member, sliding window with Gaussian blending where the cube is
   larger than the network's window; mean probabilities, their spread as uncertainty.
5. ``postprocess``: argmax, largest connected component per organ/vessel, checks (a pancreas is
   found and not cut by the end of the scan), then the label map mapped onto the CT grid
   (nearest neighbour).
6. ``measure``: tumor volume, diameter, contact angles and the NCCN rule category
   (:func:`inference.tasks.resectability.measurements.measure`); disagreement with the network is
   flagged.
7. ``write_seg``, ``write_sr``, ``write_pdf`` and ``result.json`` (a NIfTI input gets the label
   map as NIfTI and the bare PDF instead: there is no DICOM source to reference).

Clinical inputs: ``None`` (or all missing) takes the knock-out path - the models use their
training-mean clinical embedding - and every output says so (``result.clinical``). Otherwise
missing variables are filled by the bundle's KNN/mode imputer and listed as imputed.

Expected failures raise :class:`AnalysisError` with a named ``reason`` (nothing is written).
Investigational, not for clinical use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar

import numpy as np
import torch

from inference._analysis_localise import (
    MIN_CONFIDENCE,
    CrossCheckedLocaliser,
    LandmarkLocaliser,
    LocalisationEstimate,
    Localiser,
)
from inference._analysis_outputs import (
    new_outputs,
    write_dicom_outputs,
    write_result_json,
    write_without_dicom,
)
from inference._writer_common import load_source_headers
from inference.bundle import BundleError, BundleMember, LoadedBundle, load_bundle, sha256_file
from inference.clinical_preprocessing import clinical_matrix
from inference.preprocessing import preprocess_volume
from inference.tasks.resectability._ensemble import EnsembleOutput, run_ensemble
from inference.tasks.resectability._post import (
    clean_labels,
    cube_reference,
    field_of_view,
    has_pancreas,
    pancreas_is_cut,
    to_ct_grid,
)
from inference.tasks.resectability.measurements import MeasurementResult, measure
from inference.volume import Volume, read_nifti
from inference.volume_io import DicomVolume, read_dicom_series
from pancreas_contracts.clinical import CLINICAL_VARIABLES, ClinicalVariables
from pancreas_contracts.result import (
    CATEGORY_LABELS,
    AnalysisResult,
    BundleRef,
    Category,
    ClinicalUse,
    Localisation,
    Outputs,
)

__all__ = [
    "MIN_CONFIDENCE",
    "AnalysisError",
    "AnalysisOutput",
    "Analyzer",
    "LandmarkLocaliser",
    "LocalisationEstimate",
    "Localiser",
    "clinical_weight_notes",
    "default_localiser",
    "resolve_device",
]

_T = TypeVar("_T")
_CategoryLabel = Literal["resectable", "borderline", "locally advanced"]
_LABELS: Final[tuple[_CategoryLabel, _CategoryLabel, _CategoryLabel]] = (
    "resectable",
    "borderline",
    "locally advanced",
)
assert _LABELS == CATEGORY_LABELS
_ALL_VARIABLES: Final = tuple(v.name for v in CLINICAL_VARIABLES)


class AnalysisError(ValueError):
    """An input the pipeline cannot analyse; ``reason`` names why (no patient data in it).

    Reasons: ``unreadable-series``, ``not-ct``, ``not-localised``, ``outside-scan``,
    ``non-finite``, ``no-pancreas``, ``pancreas-cut``, ``unwritable-output``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class AnalysisOutput:
    """What :meth:`Analyzer.analyze` produced.

    Attributes
    ----------
    result
        The analysis result (also in ``result_json``).
    files
        The DICOM objects written: SEG, SR, encapsulated PDF (empty for a NIfTI input).
    result_json
        Path of ``result.json``.
    """

    result: AnalysisResult
    files: tuple[Path, ...]
    result_json: Path


@dataclass(frozen=True)
class _Source:
    image: Volume
    dicom: DicomVolume | None
    files: Path | tuple[Path, ...]


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.

    Raises
    ------
    ValueError
        For an unknown name or ``cuda`` without a GPU.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def _timed(timings: MutableMapping[str, float], stage: str, call: Callable[[], _T]) -> _T:
    start = time.perf_counter()
    try:
        return call()
    finally:
        timings[stage] = round(time.perf_counter() - start, 3)


def _is_nifti(series: Path | Sequence[Path]) -> bool:
    return isinstance(series, Path) and series.name.endswith((".nii", ".nii.gz"))


def _read(series: Path | Sequence[Path]) -> _Source:
    try:
        if _is_nifti(series):
            assert isinstance(series, Path)
            return _Source(read_nifti(series), None, series)
        files = series if isinstance(series, Path) else tuple(Path(p) for p in series)
        dicom = read_dicom_series(files)
    except (ValueError, OSError) as exc:
        raise AnalysisError("unreadable-series", " ".join(str(exc).split())) from exc
    if dicom.modality not in ("CT", ""):
        raise AnalysisError("not-ct", f"the series is {dicom.modality}, not CT")
    return _Source(dicom.volume, dicom, files)


def _check_clinical_spec(bundle: LoadedBundle) -> None:
    names = tuple(str(v.get("name")) for v in bundle.meta.get("clinical_variables", []))
    if names != _ALL_VARIABLES:
        raise BundleError(
            f"bundle {bundle.path}: its clinical variables differ from this node's registry "
            f"specification ({len(names)} vs {len(_ALL_VARIABLES)} variables)"
        )


def _clinical_use(
    clinical: ClinicalVariables | None, ensemble: EnsembleOutput, registry_status: str
) -> tuple[ClinicalUse, tuple[str, ...]]:
    if clinical is None or not clinical.present:
        use = ClinicalUse(missing=_ALL_VARIABLES, knocked_out=True, registry_status=registry_status)
        return use, ("no clinical variables: knock-out path (imaging only)",)
    if ensemble.knocked_out:
        use = ClinicalUse(
            missing=clinical.missing, knocked_out=True, registry_status=registry_status
        )
        return use, ("the bundle's model does not use clinical variables (CT only)",)
    use = ClinicalUse(
        used=clinical.present,
        missing=clinical.missing,
        imputed=ensemble.imputed,
        knocked_out=False,
        registry_status=registry_status,
    )
    return use, ()


def clinical_weight_notes(members: Sequence[BundleMember]) -> tuple[str, ...]:
    """A note when logit-sum fusion gave every clinical expert weight 0 (inputs read, unused).

    Parameters
    ----------
    members
        The bundle's models.

    Returns
    -------
    tuple of str
        The note, or nothing for other models and for a clinical expert with a weight.
    """
    weights = [w for m in members if (w := m.model.clinical_expert_weight) is not None]
    if weights and max(weights) == 0.0:
        return (
            "the model's clinical expert has weight 0 (no gain on its validation patients): "
            "the category rests on the CT alone",
        )
    return ()


def default_localiser(bundle: LoadedBundle) -> Localiser:
    """The coarse localisation stage the :class:`Analyzer` of ``bundle`` uses by default.

    The bundle's learned localiser cross-checked against the anatomical landmarks when it
    ships one, else the landmarks alone.
    """
    learned = bundle.localiser
    if learned is None:
        return LandmarkLocaliser()
    return CrossCheckedLocaliser(learned, LandmarkLocaliser())


class Analyzer:
    """Runs the analysis with one verified model bundle (loaded once; torch lives here).

    Parameters
    ----------
    bundle_path
        The bundle directory (or its ``bundle.json``).
    device
        ``auto``, ``cpu`` or ``cuda``.
    localiser
        The coarse localisation stage (default: the bundle's learned localiser when it has
        one, else :class:`LandmarkLocaliser`).

    Raises
    ------
    BundleError
        If the bundle cannot be loaded or does not match the node's clinical specification.
    ValueError
        For an unusable device.
    """

    def __init__(
        self, bundle_path: Path, device: str = "auto", *, localiser: Localiser | None = None
    ) -> None:
        self._bundle = load_bundle(bundle_path)
        _check_clinical_spec(self._bundle)
        self._device = resolve_device(device)
        for member in self._bundle.members:
            member.model.to(self._device).eval()
        model = self._bundle.meta.get("model", {})
        self.bundle_ref = BundleRef(
            name=str(model.get("name", "")) or "unnamed",
            version=str(model.get("version", "")) or "0",
            sha256=sha256_file(self._bundle.path / "bundle.json"),
        )
        inference = self._bundle.meta.get("inference", {})
        self._roi = int(inference.get("roi_size", self._bundle.preprocess.target_size))
        self._localiser: Localiser = (
            default_localiser(self._bundle) if localiser is None else localiser
        )

    @property
    def bundle(self) -> LoadedBundle:
        """The loaded bundle."""
        return self._bundle

    @property
    def localiser(self) -> Localiser:
        """The coarse localisation stage in use."""
        return self._localiser

    def analyze(
        self,
        series: Path | Sequence[Path],
        clinical: ClinicalVariables | None,
        *,
        out_dir: Path,
        job_id: str | None = None,
        registry_status: str = "not_configured",
        warnings: Sequence[str] = (),
    ) -> AnalysisOutput:
        """Analyse one CT and write its outputs under ``out_dir``.

        Parameters
        ----------
        series
            A DICOM series (directory, or its files) or a NIfTI file (``.nii``/``.nii.gz``).
        clinical
            The patient's clinical variables; ``None`` or all missing: knock-out path.
        out_dir
            Folder for ``seg.dcm``, ``sr.dcm``, ``report.dcm``, ``report.pdf`` and
            ``result.json`` (created).
        job_id
            The node's job id, recorded in the result.
        registry_status
            How the registry lookup went (recorded in ``result.clinical``).
        warnings
            Warnings from earlier steps (e.g. the registry), carried into every output.

        Returns
        -------
        AnalysisOutput
            The result, the DICOM files and the ``result.json`` path.

        Raises
        ------
        AnalysisError
            For an input that cannot be analysed (see its ``reason``).
        """
        timings: dict[str, float] = {}
        started = time.perf_counter()
        notes: list[str] = list(warnings)
        source = _timed(timings, "read", lambda: _read(series))
        if source.dicom is not None:
            notes.extend(source.dicom.warnings)
        image = source.image
        loc = _timed(timings, "localise", lambda: self._localiser(image))
        notes.extend(loc.warnings)
        if not loc.found:
            raise AnalysisError(
                "not-localised",
                f"the pancreas was not located (confidence {loc.confidence:.2f}, "
                f"{loc.method}); no category is given",
            )
        config = self._bundle.preprocess
        centre = np.asarray(loc.centre_mm, dtype=np.float64)

        def preprocess() -> tuple[np.ndarray, Volume, np.ndarray]:
            cube = cube_reference(centre, config.target_size, config.spacing_mm)
            inside = field_of_view(image, cube)
            if not inside.any():
                raise AnalysisError("outside-scan", "the analysis cube misses the scan")
            values = preprocess_volume(image, config, centre_mm=loc.centre_mm).image
            if not np.isfinite(values).all():
                raise AnalysisError("non-finite", "NaN or infinite values after preprocessing")
            return values, cube, inside

        values, cube, inside = _timed(timings, "preprocess", preprocess)
        coverage = float(inside.mean())
        if coverage < 1.0:
            notes.append(f"the {config.cube_mm:.0f} mm cube is {coverage:.0%} inside the scan")
        raw = None if clinical is None or not clinical.present else clinical_matrix([clinical])

        def infer() -> EnsembleOutput:
            try:
                return run_ensemble(
                    self._bundle.members, values, raw, device=self._device, roi=self._roi
                )
            except ValueError as exc:
                raise AnalysisError("non-finite", str(exc)) from exc

        ensemble = _timed(timings, "inference", infer)
        label_ct = _timed(
            timings, "postprocess", lambda: self._labels(ensemble, cube, inside, image)
        )
        measured = _timed(timings, "measure", lambda: measure(label_ct))
        notes.extend(measured.warnings)
        clinical_use, clinical_notes = _clinical_use(clinical, ensemble, registry_status)
        notes.extend(clinical_notes)
        if not clinical_use.knocked_out:
            notes.extend(clinical_weight_notes(self._bundle.members))
        if len(self._bundle.members) == 1:
            notes.append("single-model bundle: no ensemble spread (uncertainty 0)")
        result = self._result(source, ensemble, measured, loc, clinical_use, job_id, notes)
        return self._write(result, source, label_ct, out_dir, timings, started)

    def _labels(
        self, ensemble: EnsembleOutput, cube: Volume, inside: np.ndarray, image: Volume
    ) -> Volume:
        labels = np.argmax(ensemble.seg_probabilities, axis=0).astype(np.uint8)
        labels[~inside] = 0
        labels, _ = clean_labels(labels)
        if not has_pancreas(labels):
            raise AnalysisError("no-pancreas", "the network found no pancreas in the cube")
        if pancreas_is_cut(labels, inside):
            raise AnalysisError("pancreas-cut", "the pancreas is cut by the end of the scan")
        label_ct = to_ct_grid(labels, cube, image)
        if not has_pancreas(label_ct.array):
            raise AnalysisError("no-pancreas", "the pancreas is too small for the CT grid")
        return label_ct

    def _result(
        self,
        source: _Source,
        ensemble: EnsembleOutput,
        measured: MeasurementResult,
        loc: LocalisationEstimate,
        clinical_use: ClinicalUse,
        job_id: str | None,
        notes: list[str],
    ) -> AnalysisResult:
        probs = tuple(float(p) for p in ensemble.probabilities)
        label = _LABELS[int(np.argmax(ensemble.probabilities))]
        rule = None if measured.rule_category is None else _LABELS[measured.rule_category]
        dicom = source.dicom
        return AnalysisResult(
            study_uid=dicom.study_instance_uid if dicom is not None else "",
            series_uid=dicom.series_instance_uid if dicom is not None else "",
            job_id=job_id,
            bundle=self.bundle_ref,
            category=Category(
                label=label,
                probabilities=(probs[0], probs[1], probs[2]),
                uncertainty=round(ensemble.uncertainty, 6),
            ),
            rule_category=rule,
            disagreement=rule is not None and rule != label,
            measurements=measured.to_measurements(),
            clinical=clinical_use,
            localisation=Localisation(
                found=loc.found,
                confidence=round(loc.confidence, 4),
                box_mm=loc.box_mm,
                method=loc.method,
            ),
            outputs=new_outputs() if dicom is not None else Outputs(),
            warnings=tuple(dict.fromkeys(notes)),
        )

    def _write(
        self,
        result: AnalysisResult,
        source: _Source,
        label_ct: Volume,
        out_dir: Path,
        timings: dict[str, float],
        started: float,
    ) -> AnalysisOutput:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AnalysisError("unwritable-output", f"cannot create {out_dir}") from exc
        if source.dicom is None:
            result = result.model_copy(
                update={"warnings": (*result.warnings, "NIfTI input: no DICOM objects written")}
            )
            written = write_without_dicom(result, source.image, label_ct, out_dir, timings)
        else:
            dicom = source.dicom
            seg_label = dicom.to_native(label_ct)
            headers = load_source_headers(source.files, dicom.series_instance_uid)
            written = write_dicom_outputs(
                result, source.image, label_ct, seg_label, headers, out_dir, timings
            )
        timings["total"] = round(time.perf_counter() - started, 3)
        final = result.model_copy(update={"timings_s": dict(timings)})
        path = write_result_json(AnalysisResult.model_validate(final.model_dump()), out_dir)
        return AnalysisOutput(final, written.dicom, path)
