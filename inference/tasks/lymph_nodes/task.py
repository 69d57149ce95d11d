"""Run a lymph-node bundle on one CT: organs, attention, nodes, their status, the patient's N.

Stages (timed in :attr:`LymphNodeResult.timings_s`):

1. ``organs``: the organ segmenter's cube around the scan's middle
   (:func:`inference.preprocessing.preprocess_volume`), its label map (0 outside the scan);
2. ``attention``: signed distances and ``A^all`` on that grid
   (:func:`~inference.tasks.lymph_nodes.attention.attention_maps`);
3. ``segmentation``: the node network's cube, centred on the bounding box of the structures
   found (none found: the scan's middle, with a warning), ``A^all`` resampled onto it
   (trilinear, 0 beyond the organ cube), the node probability map (0 outside the scan);
4. ``nodes``: instances, measurements and stations
   (:mod:`~inference.tasks.lymph_nodes.nodes`, :mod:`~inference.tasks.lymph_nodes.stations`);
5. ``classification``: each candidate's crop through the node classifier: its probability of
   metastasis and the ``suspicious`` flag; with a not-node class, its probability of being a
   node, and the candidates below the bundle's ``node_threshold`` are dropped (the detection's
   false-positive reduction);
6. ``patient``: the patient model on the tumor slices (when a tumor mask is given) and the
   largest suspicious node's volume; without a mask (or with an empty one), on the node branch
   alone, and the result says so.

The input is a :class:`inference.volume.Volume` in HU (any orientation). The analysis runs it
as an optional stage after the staging segmentation (not a registered task of
:data:`inference.tasks.TASKS`): :mod:`inference._analysis_lymph_nodes` (``result.json``'s
``lymph_nodes``, the lymph-node SEG, SR and PDF). Investigational, not for clinical use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import torch

from inference.preprocessing import PreprocessConfig, preprocess_volume
from inference.tasks.lymph_nodes.attention import DistanceAttention, attention_maps
from inference.tasks.lymph_nodes.bundle import LymphNodeBundle
from inference.tasks.lymph_nodes.model import SegOutput
from inference.tasks.lymph_nodes.nodes import NodeGeometry, extract_instances, measure
from inference.tasks.lymph_nodes.patient import tumor_slices
from inference.tasks.lymph_nodes.stations import anatomy_of, assign_station
from inference.tasks.protocol import AnalysisError
from inference.timing import timed
from inference.volume import Volume
from inference.volume_io import resample_to_reference
from pancreas_contracts.lymph_nodes import ATTENTION_STRUCTURES

__all__ = ["LymphNode", "LymphNodeAnalysis", "LymphNodeModel", "LymphNodeResult"]

_NO_ORGANS = "no organ or vessel found: the node cube is centred on the scan's middle"
_NO_TUMOR = "no tumor mask: the patient N+ probability uses the largest suspicious node alone"
_EMPTY_TUMOR = "the tumor mask is empty here: the patient N+ probability uses the nodes alone"
_TOO_MANY = "more node candidates than max_nodes: only the largest were classified"
_NO_ATTENTION = "this bundle's node network runs without attention (the ablation baseline)"
#: The organ label map with its distance maps.
_Attention = tuple[Volume, DistanceAttention]
_STRUCTURE_VALUES = np.array([0, *(s.value for s in ATTENTION_STRUCTURES)], dtype=np.uint8)


@dataclass(frozen=True)
class LymphNode:
    """One node found (investigational).

    Attributes
    ----------
    centre_voxel
        Centre of mass as a (fractional) voxel index of the analysed CT.
    centre_lps_mm
        The same point in DICOM patient coordinates (LPS mm).
    short_axis_mm, long_axis_mm
        Axial short and long axis (:func:`~inference.tasks.lymph_nodes.nodes.axial_axes`).
    volume_ml
        Volume.
    station
        JPS station code (:mod:`~inference.tasks.lymph_nodes.stations`), ``None`` when no
        structure was found.
    nearest_structure
        The attention structure the station was read from.
    metastasis_probability
        The node classifier's positive probability.
    suspicious
        ``metastasis_probability`` at or above the bundle's ``suspicious_threshold``.
    """

    centre_voxel: tuple[float, float, float]
    centre_lps_mm: tuple[float, float, float]
    short_axis_mm: float
    long_axis_mm: float
    volume_ml: float
    station: str | None
    nearest_structure: str | None
    metastasis_probability: float
    suspicious: bool


@dataclass(frozen=True)
class LymphNodeResult:
    """The lymph-node task's answer for one CT (investigational, not for clinical use).

    Attributes
    ----------
    nodes
        Nodes found, largest first.
    n_positive_probability
        The patient model's N+ probability.
    n_positive
        ``n_positive_probability`` at or above the bundle's ``patient_threshold``.
    largest_suspicious_volume_ml
        The patient model's node input (0 without suspicious nodes).
    inputs
        What was used: ``ct`` always, ``attention`` when the node network used the organ
        attention map, ``tumor_mask`` when the patient model saw tumor slices.
    model_version
        ``name version`` of the bundle's model.
    warnings
        What the reader should know.
    timings_s
        Seconds per stage.
    """

    nodes: tuple[LymphNode, ...]
    n_positive_probability: float
    n_positive: bool
    largest_suspicious_volume_ml: float
    inputs: tuple[str, ...]
    model_version: str
    warnings: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, eq=False)
class LymphNodeAnalysis:
    """A :class:`LymphNodeResult` with the maps it was read from (for evaluation).

    Attributes
    ----------
    result
        The answer.
    organs
        The organ label map (``organs.nii.gz`` values) on the organ cube.
    attention
        ``A^all`` on the node cube.
    probability
        The node probability map on the node cube (its affine is the cube's).
    instances
        The node instances on the node cube (instance ``n`` = ``result.nodes[n - 1]``).
    candidates
        The instances before the node threshold (the same as ``instances`` when it drops
        nothing), on the node cube.
    candidate_node_probability
        The node probability of each candidate (candidate ``n`` = entry ``n - 1``).
    """

    result: LymphNodeResult
    organs: Volume
    attention: npt.NDArray[np.float32]
    probability: Volume
    instances: npt.NDArray[np.int32]
    candidates: npt.NDArray[np.int32]
    candidate_node_probability: tuple[float, ...]


def _cube_affine(centre: Sequence[float], size: int, cube_mm: float) -> npt.NDArray[np.float64]:
    spacing = cube_mm / size
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = np.asarray(centre, dtype=np.float64) - spacing * (size - 1) / 2.0
    return affine


def _inside(grid: Volume, image: Volume) -> npt.NDArray[np.bool_]:
    """Which voxels of ``grid`` lie within the field of view of ``image``."""
    index = np.indices(grid.shape).reshape(3, -1).T
    at = image.world_to_voxel(grid.voxel_to_world(index))
    inside = np.all((at > -0.5) & (at < np.asarray(image.shape) - 0.5), axis=1)
    out: npt.NDArray[np.bool_] = inside.reshape(grid.shape)
    return out


def _cube(image: Volume, size: int, cube_mm: float, centre: Sequence[float]) -> Volume:
    config = PreprocessConfig(target_size=size, cube_mm=cube_mm)
    values = preprocess_volume(image, config, centre_mm=centre).image
    if not np.isfinite(values).all():
        raise AnalysisError("non-finite", "NaN or infinite values after preprocessing")
    return Volume(values, _cube_affine(centre, size, cube_mm))


def _middle(volume: Volume) -> tuple[float, float, float]:
    """RAS+ mm of the volume's middle voxel."""
    middle = (np.asarray(volume.shape, dtype=np.float64) - 1.0) / 2.0
    x, y, z = volume.voxel_to_world(middle[None, :])[0]
    return (float(x), float(y), float(z))


def _structures_centre(organs: Volume) -> tuple[float, float, float] | None:
    index = np.argwhere(np.asarray(organs.array) > 0)
    if len(index) == 0:
        return None
    middle = (index.min(axis=0) + index.max(axis=0)) / 2.0
    x, y, z = organs.voxel_to_world(middle[None, :])[0]
    return (float(x), float(y), float(z))


def _distances_at(
    attention: DistanceAttention, organs: Volume, centre_ras: Sequence[float]
) -> dict[str, float]:
    at = np.rint(organs.world_to_voxel(np.asarray(centre_ras)[None, :])[0]).astype(int)
    if np.any(at < 0) or np.any(at >= np.asarray(organs.shape)):
        return {s.name: float("inf") for s in ATTENTION_STRUCTURES}
    i, j, k = (int(v) for v in at)
    return {s.name: float(attention.distances[n][i, j, k])
            for n, s in enumerate(ATTENTION_STRUCTURES)}  # fmt: skip


class LymphNodeModel:
    """A loaded lymph-node bundle, ready to run on CTs.

    Parameters
    ----------
    bundle
        From :func:`inference.tasks.lymph_nodes.bundle.load_lymph_node_bundle`.
    device
        Where the networks run (default: CPU).
    """

    def __init__(self, bundle: LymphNodeBundle, device: torch.device | None = None) -> None:
        self._bundle = bundle
        self._device = device or torch.device("cpu")
        for module, _ in bundle.networks.stages().values():
            module.to(self._device).eval()

    def analyse(self, image: Volume, tumor_mask: Volume | None = None) -> LymphNodeResult:
        """The lymph-node result for one CT (see the module docstring).

        Parameters
        ----------
        image
            The CT in HU.
        tumor_mask
            The PDAC mask (non-zero = tumor) on any grid in the CT's world space, or ``None``.

        Raises
        ------
        AnalysisError
            ``non-finite`` when the CT holds NaN or infinite values after preprocessing.
        """
        return self.analyse_with_maps(image, tumor_mask).result

    def analyse_with_maps(
        self, image: Volume, tumor_mask: Volume | None = None
    ) -> LymphNodeAnalysis:
        """:meth:`analyse`, with the organ, attention, probability and instance maps.

        Raises
        ------
        AnalysisError
            ``non-finite`` when the CT holds NaN or infinite values after preprocessing.
        """
        timings: dict[str, float] = {}
        warnings: list[str] = []
        organs = timed(timings, "organs", lambda: self.organ_map(image))
        labels = np.asarray(organs.array, dtype=np.uint8)
        attention = timed(timings, "attention", lambda: attention_maps(labels, organs.spacing))
        probability, cube_attention = timed(
            timings, "segmentation", lambda: self._segment(image, organs, attention, warnings)
        )
        instances, geometry, stations = timed(
            timings,
            "nodes",
            lambda: self._instances(image, probability, (organs, attention), warnings),
        )
        node_p, metastasis_p = timed(
            timings, "classification", lambda: self._classify(image, geometry)
        )
        kept = [n for n, p in enumerate(node_p) if p >= self._bundle.settings.node_threshold]
        nodes = self._nodes([geometry[n] for n in kept], [stations[n] for n in kept],
                            [metastasis_p[n] for n in kept])  # fmt: skip
        result = timed(
            timings, "patient", lambda: self._patient(image, tumor_mask, nodes, warnings)
        )
        result = replace(result, timings_s=timings)
        renumber = np.zeros(len(node_p) + 1, dtype=np.int32)
        renumber[[n + 1 for n in kept]] = np.arange(1, len(kept) + 1, dtype=np.int32)
        return LymphNodeAnalysis(result, organs, cube_attention, probability,
                                 renumber[instances], instances, tuple(node_p))  # fmt: skip

    def _run(self, network: torch.nn.Module, *inputs: torch.Tensor) -> object:
        with torch.no_grad():
            return network(*(x.to(self._device) for x in inputs))

    def organ_map(self, image: Volume) -> Volume:
        """The organ segmenter's label map (``organs.nii.gz`` values) on its cube.

        Raises
        ------
        AnalysisError
            ``non-finite`` when the CT holds NaN or infinite values after preprocessing.
        """
        config = self._bundle.networks.organ_config
        cube = _cube(image, config.cube_size, config.cube_mm, _middle(image))
        logits = self._run(self._bundle.networks.organs, torch.from_numpy(cube.array[None, None]))
        assert isinstance(logits, torch.Tensor)
        labels = _STRUCTURE_VALUES[logits[0].argmax(dim=0).cpu().numpy()]
        labels[~_inside(cube, image)] = 0  # the cube's padding beyond the scan is no organ
        return Volume(labels, cube.affine)

    def _segment(
        self, image: Volume, organs: Volume, attention: DistanceAttention, warnings: list[str]
    ) -> tuple[Volume, npt.NDArray[np.float32]]:
        network = self._bundle.networks.segmenter
        config = network.config
        centre = _structures_centre(organs)
        if centre is None:
            warnings.append(_NO_ORGANS)
            centre = _middle(organs)
        cube = _cube(image, config.cube_size, config.cube_mm, centre)
        moved = resample_to_reference(Volume(attention.combined, organs.affine), cube, 1)
        cube_attention = np.clip(np.asarray(moved.array, dtype=np.float32), 0.0, 1.0)
        if not config.attention:
            warnings.append(_NO_ATTENTION)
        out = self._run(network, torch.from_numpy(cube.array[None, None]),
                        torch.from_numpy(cube_attention[None, None]))  # fmt: skip
        assert isinstance(out, SegOutput)
        node = torch.softmax(out.logits.float(), dim=1)[0, 1].cpu().numpy()
        node = np.where(_inside(cube, image), node, 0.0).astype(np.float32)
        return Volume(node, cube.affine), cube_attention

    def _instances(
        self, image: Volume, probability: Volume, attention: _Attention, warnings: list[str]
    ) -> tuple[npt.NDArray[np.int32], tuple[NodeGeometry, ...], list[tuple[str, str] | None]]:
        settings = self._bundle.settings
        instances = extract_instances(
            np.asarray(probability.array), settings.seg_threshold, settings.min_voxels
        )
        if int(instances.max(initial=0)) > settings.max_nodes:
            warnings.append(_TOO_MANY)
            instances[instances > settings.max_nodes] = 0
        geometry = measure(instances, probability, image)
        organs, distances = attention
        anatomy = anatomy_of(organs)
        stations = [
            assign_station(g.centre_ras_mm, _distances_at(distances, organs, g.centre_ras_mm),
                           anatomy)
            for g in geometry
        ]  # fmt: skip
        return instances, geometry, stations

    def _classify(
        self, image: Volume, geometry: Sequence[NodeGeometry]
    ) -> tuple[list[float], list[float]]:
        """Each candidate's node and metastasis probability."""
        if not geometry:
            return [], []
        classifier = self._bundle.networks.classifier
        size, mm = classifier.config.crop_size, classifier.crop_mm
        crops = np.stack([_cube(image, size, mm, g.centre_ras_mm).array for g in geometry])
        logits = self._run(classifier, torch.from_numpy(crops[:, None]))
        assert isinstance(logits, torch.Tensor)
        node, metastasis = classifier.probabilities(logits)
        return [float(p) for p in node.cpu()], [float(p) for p in metastasis.cpu()]

    def _nodes(
        self,
        geometry: Sequence[NodeGeometry],
        stations: Sequence[tuple[str, str] | None],
        probabilities: Sequence[float],
    ) -> tuple[LymphNode, ...]:
        threshold = self._bundle.settings.suspicious_threshold
        nodes = []
        for g, found, p in zip(geometry, stations, probabilities, strict=True):
            nodes.append(
                LymphNode(
                    centre_voxel=g.centre_voxel, centre_lps_mm=g.centre_lps_mm,
                    short_axis_mm=g.axes.short_mm, long_axis_mm=g.axes.long_mm,
                    volume_ml=g.volume_ml, station=found[0] if found else None,
                    nearest_structure=found[1] if found else None,
                    metastasis_probability=round(p, 6), suspicious=p >= threshold,
                )
            )  # fmt: skip
        return tuple(nodes)

    def _patient(
        self,
        image: Volume,
        tumor_mask: Volume | None,
        nodes: Sequence[LymphNode],
        warnings: list[str],
    ) -> LymphNodeResult:
        network = self._bundle.networks.patient
        largest_ml = max((n.volume_ml for n in nodes if n.suspicious), default=0.0)
        slices = None if tumor_mask is None else tumor_slices(image, tumor_mask, network.config)
        if slices is None:
            warnings.append(_NO_TUMOR if tumor_mask is None else _EMPTY_TUMOR)
            with torch.no_grad():
                logits = network(
                    None, None, torch.tensor([largest_ml * 1000.0], device=self._device)
                )
        else:
            count = len(slices.images)
            volumes = torch.full((count,), largest_ml * 1000.0)
            images = torch.from_numpy(slices.images[:, None])
            logits = self._run(network, images, torch.from_numpy(slices.masks[:, None]), volumes)
        assert isinstance(logits, torch.Tensor)
        # the paper's ensemble: the nine patches' probabilities averaged
        probability = float(torch.softmax(logits.float(), dim=1)[:, 1].mean())
        uses_attention = self._bundle.networks.segmenter.config.attention
        inputs = ("ct", *(("attention",) if uses_attention else ()),
                  *(("tumor_mask",) if slices is not None else ()))  # fmt: skip
        return LymphNodeResult(
            nodes=tuple(nodes), n_positive_probability=round(probability, 6),
            n_positive=probability >= self._bundle.settings.patient_threshold,
            largest_suspicious_volume_ml=largest_ml, inputs=inputs,
            model_version=self._bundle.version, warnings=tuple(warnings),
        )  # fmt: skip
