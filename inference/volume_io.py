"""Volume I/O: DICOM series to canonical volumes, and world-coordinate resampling.

:func:`read_dicom_series` reads a series (a directory, one file, or a list of files) leniently
(``pydicom`` with ``force=True``; compressed transfer syntaxes through pylibjpeg and pyjpegls) but
checks its geometry strictly: slices are sorted by position along the slice normal and must form
one regular, orthogonal grid (PS3.3 C.7.6.2 Image Plane; C.7.6.16 Multi-frame Functional Groups
for Enhanced CT). The result is a float32 volume of rescaled values (Hounsfield units for CT) in
the node's canonical RAS+ orientation (:func:`inference.volume.to_canonical`), plus the DICOM
identifiers needed to refer back to the source instances.

NIfTI reading and writing live in :mod:`inference.volume` (:func:`~inference.volume.read_nifti`,
:func:`~inference.volume.write_nifti`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import UID

from inference._dicom_geometry import stack_geometry
from inference._dicom_read import (
    FrameRef,
    ImageInstance,
    ScanResult,
    collect_files,
    decode_frames,
    drop_pixel_data,
    frames_of,
    scan,
    single_slice_step,
)
from inference._resample import check_order, exact_index_map, sample, smoothed_sample
from inference._volume_errors import (
    CorruptDicomError,
    DuplicateSliceError,
    GantryTiltError,
    GeometryError,
    InconsistentShapeError,
    InconsistentSpacingError,
    MissingGeometryError,
    MissingSliceError,
    MixedOrientationError,
    MultipleSeriesError,
    NotAnImageError,
    SeriesNotFoundError,
    UnsupportedPixelDataError,
    VolumeError,
)
from inference.volume import LPS_TO_RAS, Volume, to_canonical

__all__ = [
    "CorruptDicomError",
    "DicomVolume",
    "DuplicateSliceError",
    "GantryTiltError",
    "GeometryError",
    "InconsistentShapeError",
    "InconsistentSpacingError",
    "MissingGeometryError",
    "MissingSliceError",
    "MixedOrientationError",
    "MultipleSeriesError",
    "NotAnImageError",
    "SeriesNotFoundError",
    "SeriesSummary",
    "UnsupportedPixelDataError",
    "VolumeError",
    "list_dicom_series",
    "read_dicom_series",
    "resample_to_reference",
    "resample_to_spacing",
]

Source = Path | str | Sequence[Path | str]


@dataclass(frozen=True, eq=False)
class DicomVolume:
    """A DICOM series read as a canonical volume, with the identifiers of its source.

    Parameters
    ----------
    volume
        float32 rescaled values (HU for CT) in canonical RAS+ orientation.
    series_instance_uid, study_instance_uid, frame_of_reference_uid
        The series' UIDs (empty strings where the instances leave them empty).
    modality
        Modality of the series (``"CT"``, ...), empty if absent.
    sop_instance_uids
        One per slice, in the order of the DICOM slice axis: increasing position along the
        slice normal ``row cosine x column cosine`` (the third column of ``dicom_affine``).
    frame_numbers
        1-based frame number of each slice within its instance (all 1 for single-frame series).
    dicom_affine
        4x4 map from native indices ``(column, row, slice)`` to DICOM LPS+ millimetres.
    image_orientation
        The series' ImageOrientationPatient (row cosine, column cosine), normalised.
    pixel_spacing
        PixelSpacing as in DICOM: ``(row spacing, column spacing)`` in mm.
    slice_step_mm
        Distance between slice centres measured from ImagePositionPatient (not SliceThickness).
    transfer_syntaxes
        Transfer Syntax UIDs seen in the series, sorted.
    sop_class_uids
        SOP Class UIDs seen in the series, sorted.
    warnings
        Lenient-reading notes (skipped non-image instances, dropped duplicates, ...).
    headers
        The series' instance headers as read (one per instance, duplicates dropped), without
        their pixel data: what the DICOM writers cite, so they need not read the files again.
    """

    volume: Volume
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str
    modality: str
    sop_instance_uids: tuple[str, ...]
    frame_numbers: tuple[int, ...]
    dicom_affine: npt.NDArray[np.float64]
    image_orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    slice_step_mm: float
    transfer_syntaxes: tuple[str, ...]
    sop_class_uids: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    headers: tuple[Dataset, ...] = field(default=(), compare=False, repr=False)

    @property
    def num_slices(self) -> int:
        """Number of slices (frames) in the series."""
        return len(self.sop_instance_uids)

    @property
    def native_affine(self) -> npt.NDArray[np.float64]:
        """RAS+ affine of the native ``(column, row, slice)`` grid."""
        return LPS_TO_RAS @ self.dicom_affine

    def to_native(self, volume: Volume) -> Volume:
        """Reorient a volume on the canonical grid back to the native DICOM index order.

        Useful to write results frame by frame (e.g. a SEG): ``result.array[:, :, k]`` is then
        the slice of ``sop_instance_uids[k]`` with ``[column, row]`` indexing.

        Raises
        ------
        ValueError
            If ``volume`` does not lie on this series' grid.
        """
        native = self.native_affine
        transform = _axis_transform(volume.affine, native)
        array = nib.orientations.apply_orientation(volume.array, transform)
        affine = volume.affine @ nib.orientations.inv_ornt_aff(transform, volume.array.shape)
        if array.shape[2] != self.num_slices or not np.allclose(affine, native, atol=1e-3):
            raise ValueError("volume is not on this series' grid")
        return Volume(np.ascontiguousarray(array), native.copy())


def _axis_transform(
    affine: npt.NDArray[np.float64], target: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The axis permutation and flips taking a grid of ``affine`` to one of ``target``.

    Each of ``affine``'s voxel axes is matched with the ``target`` axis whose step vector it
    equals or reverses. Not through the closest world axes (``io_orientation``): an oblique
    series whose image axes lie at 45 degrees between two world axes has no single closest
    axis, and the two grids might then choose differently.

    Raises
    ------
    ValueError
        If the step vectors are not those of ``target``, permuted and reversed.
    """
    transform = np.zeros((3, 2))
    for axis in range(3):
        step = affine[:3, axis]
        matches = [
            (other, sign)
            for other in range(3)
            for sign in (1.0, -1.0)
            if np.allclose(step, sign * target[:3, other], atol=1e-4)
        ]
        if len(matches) != 1:
            raise ValueError("volume is not on this series' grid")
        transform[axis] = matches[0]
    if sorted(transform[:, 0]) != [0.0, 1.0, 2.0]:
        raise ValueError("volume is not on this series' grid")
    return transform


@dataclass(frozen=True)
class SeriesSummary:
    """Header-level description of one image series found in a source.

    Parameters
    ----------
    series_instance_uid
        SeriesInstanceUID (empty if the instances leave it empty).
    modality
        Modality of the first instance.
    num_instances, num_frames
        Image instances and frames (equal for single-frame series).
    sop_class_uids, transfer_syntaxes
        Sorted UIDs seen in the series.
    """

    series_instance_uid: str
    modality: str
    num_instances: int
    num_frames: int
    sop_class_uids: tuple[str, ...]
    transfer_syntaxes: tuple[str, ...]


def list_dicom_series(source: Source) -> tuple[SeriesSummary, ...]:
    """Summarise the image series in ``source`` from headers only (no pixel decoding).

    Parameters
    ----------
    source
        A directory (walked recursively), a file, or a sequence of files/directories.

    Returns
    -------
    tuple of SeriesSummary
        One per SeriesInstanceUID, sorted by UID; empty when there are no image instances.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    CorruptDicomError
        If a file is damaged (see :func:`read_dicom_series`).
    """
    result = scan(collect_files(source))
    out = []
    for uid, instances in sorted(_group_by_series(result).items()):
        frames = 0
        for inst in instances:
            try:
                frames += int(inst.dataset.get("NumberOfFrames", 1) or 1)
            except (TypeError, ValueError):
                frames += 1
        out.append(
            SeriesSummary(
                series_instance_uid=uid,
                modality=str(instances[0].dataset.get("Modality", "") or ""),
                num_instances=len(instances),
                num_frames=frames,
                sop_class_uids=tuple(sorted({i.sop_class_uid for i in instances})),
                transfer_syntaxes=tuple(sorted({i.transfer_syntax_uid for i in instances})),
            )
        )
    return tuple(out)


def read_dicom_series(source: Source, *, series_uid: str | None = None) -> DicomVolume:
    """Read one DICOM image series as a canonical float32 volume.

    Slices are ordered by their position along the slice normal, the cross product of the
    ImageOrientationPatient row and column cosines dotted with ImagePositionPatient (PS3.3
    C.7.6.2.1.1), so head-first and feet-first acquisitions and any orientation give the same
    world geometry; InstanceNumber is ignored. The slice step is measured from the positions
    (SliceThickness may be absent or differ from the step). Stored values are rescaled with
    RescaleSlope/RescaleIntercept (C.8.2.1), or for Enhanced CT with the Pixel Value
    Transformation functional group (C.7.6.16.2.9), each slice with its own values.

    Parameters
    ----------
    source
        A series directory (walked recursively; hidden files and DICOMDIR skipped), one file, or
        a sequence of files/directories. Enhanced (multi-frame) instances are expanded to their
        frames.
    series_uid
        SeriesInstanceUID to read when the source holds several series.

    Returns
    -------
    DicomVolume
        The canonical volume plus UIDs, the native LPS affine and transfer syntaxes.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    CorruptDicomError
        A file claims to be DICOM but cannot be parsed or its pixel data decoded, or a file named
        explicitly is not DICOM.
    NotAnImageError
        No image instance (e.g. only SR or SEG objects).
    UnsupportedPixelDataError
        Colour images, or a transfer syntax without an installed decoder.
    MultipleSeriesError
        Several series and ``series_uid`` is ``None``.
    SeriesNotFoundError
        ``series_uid`` is not among the image series.
    GeometryError
        Subclasses: :class:`MissingGeometryError`, :class:`MixedOrientationError`,
        :class:`GantryTiltError`, :class:`InconsistentShapeError`,
        :class:`InconsistentSpacingError` (:class:`MissingSliceError` for gaps over 1.5 times
        the median step, :class:`DuplicateSliceError`).
    """
    files = collect_files(source)
    result = scan(files)
    groups = _group_by_series(result)
    if not groups:
        classes = sorted({_class_name(c) for _, c in result.non_images})
        detail = f" (found {', '.join(classes)})" if classes else ""
        raise NotAnImageError(f"no image instances among {len(files)} file(s){detail}")
    if series_uid is not None:
        if series_uid not in groups:
            raise SeriesNotFoundError(
                f"series {series_uid} not found; image series: {', '.join(sorted(groups))}"
            )
        chosen = series_uid
    elif len(groups) > 1:
        raise MultipleSeriesError(sorted(groups))
    else:
        chosen = next(iter(groups))
    warnings = _scan_warnings(result, groups, chosen)
    instances, dropped = _drop_duplicate_instances(groups[chosen])
    if dropped:
        warnings.append(f"{dropped} duplicate instance(s) (same SOPInstanceUID) ignored")
    return _assemble(instances, chosen, warnings)


def _group_by_series(result: ScanResult) -> dict[str, list[ImageInstance]]:
    groups: dict[str, list[ImageInstance]] = defaultdict(list)
    for inst in result.images:
        groups[inst.series_instance_uid].append(inst)
    return dict(groups)


def _class_name(uid: str) -> str:
    return UID(uid).name if uid else "no SOP Class UID"


def _scan_warnings(
    result: ScanResult, groups: dict[str, list[ImageInstance]], chosen: str
) -> list[str]:
    warnings = []
    if result.non_images:
        warnings.append(f"{len(result.non_images)} non-image instance(s) ignored")
    if result.skipped:
        warnings.append(f"{len(result.skipped)} non-DICOM or DICOMDIR file(s) ignored")
    others = len(groups) - 1
    if others:
        warnings.append(f"{others} other series ignored (read {chosen})")
    return warnings


def _drop_duplicate_instances(
    instances: Sequence[ImageInstance],
) -> tuple[list[ImageInstance], int]:
    seen: set[str] = set()
    kept = []
    for inst in instances:
        if inst.sop_instance_uid and inst.sop_instance_uid in seen:
            continue
        seen.add(inst.sop_instance_uid)
        kept.append(inst)
    return kept, len(instances) - len(kept)


def _assemble(
    instances: Sequence[ImageInstance], series_uid: str, warnings: list[str]
) -> DicomVolume:
    per_instance = [frames_of(inst, index) for index, inst in enumerate(instances)]
    frames: list[FrameRef] = [f for own in per_instance for f in own]
    single_step = single_slice_step(instances[0]) if len(frames) == 1 else None
    if len(frames) == 1 and single_step is None:
        warnings.append("single slice without SliceThickness: 1 mm slice extent assumed")
    geometry = stack_geometry([f.plane for f in frames], single_slice_step_mm=single_step)
    sorted_frames = [frames[i] for i in geometry.order]
    slot = {(f.instance, f.frame): k for k, f in enumerate(sorted_frames)}

    stack = np.empty((len(frames), geometry.rows, geometry.columns), dtype=np.float32)
    for index, (inst, own) in enumerate(zip(instances, per_instance, strict=True)):
        pixels = decode_frames(inst)
        if pixels.shape[0] != len(own) or pixels.shape[1:] != (geometry.rows, geometry.columns):
            raise CorruptDicomError(
                f"{inst.path.name}: decoded pixel data has shape {pixels.shape}, expected "
                f"{len(own)}x{geometry.rows}x{geometry.columns}"
            )
        for frame in own:
            values = pixels[frame.frame].astype(np.float32)
            if frame.slope != 1.0:
                values *= np.float32(frame.slope)
            if frame.intercept != 0.0:
                values += np.float32(frame.intercept)
            stack[slot[(index, frame.frame)]] = values
        drop_pixel_data(inst.dataset)

    # (slice, row, column) -> (column, row, slice): the index order of ``dicom_affine``.
    native = Volume(stack.transpose(2, 1, 0), LPS_TO_RAS @ geometry.affine_lps)
    first = instances[0].dataset
    frames_of_reference = {str(i.dataset.get("FrameOfReferenceUID", "") or "") for i in instances}
    if len(frames_of_reference) > 1:
        warnings.append(f"{len(frames_of_reference)} FrameOfReferenceUIDs in one series")
    return DicomVolume(
        volume=to_canonical(native),
        series_instance_uid=series_uid,
        study_instance_uid=instances[0].study_instance_uid,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "") or ""),
        modality=str(first.get("Modality", "") or ""),
        sop_instance_uids=tuple(instances[f.instance].sop_instance_uid for f in sorted_frames),
        frame_numbers=tuple(f.frame + 1 for f in sorted_frames),
        dicom_affine=geometry.affine_lps,
        image_orientation=geometry.orientation,
        pixel_spacing=geometry.pixel_spacing,
        slice_step_mm=geometry.slice_step_mm,
        transfer_syntaxes=tuple(sorted({i.transfer_syntax_uid for i in instances})),
        sop_class_uids=tuple(sorted({i.sop_class_uid for i in instances})),
        warnings=tuple(warnings),
        headers=tuple(i.dataset for i in instances),
    )


# --------------------------------------------------------------------------------------------
# Resampling in world coordinates
# --------------------------------------------------------------------------------------------


def resample_to_spacing(
    volume: Volume,
    spacing_mm: float | Sequence[float] = (1.0, 1.0, 1.0),
    order: int = 1,
    *,
    smooth_sigma: Sequence[float] | None = None,
) -> Volume:
    """Resample onto a grid with the given voxel size, keeping axes and field of view.

    The new grid has the same axis directions; along each axis it has
    ``max(1, round(n * old_spacing / new_spacing))`` voxels centred on the same field-of-view
    centre, so the world extent is kept (to within one new voxel) and every sample is taken
    at its true world position. Samples beyond the outermost voxel centres repeat the edge.

    Parameters
    ----------
    volume
        Input volume (any orientation).
    spacing_mm
        New voxel size in mm, one number or one per axis ``(i, j, k)``.
    order
        Spline order: 0 (nearest neighbour, for label maps; keeps the dtype) to 5; 1 is linear.
        For ``order >= 1`` the result is float32 (float64 input stays float64).
    smooth_sigma
        Gaussian anti-aliasing before linear sampling (``order`` 1 only), in voxels of
        ``volume`` per axis: the result equals sampling
        ``scipy.ndimage.gaussian_filter(volume, smooth_sigma, mode="nearest")`` (float32),
        but only the voxels the samples read are smoothed
        (:func:`inference._resample.smoothed_sample`).

    Returns
    -------
    Volume
        The resampled volume with its new affine.

    Raises
    ------
    ValueError
        Non-positive spacing or an order outside 0-5.
    """
    check_order(order)
    new = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(new)) or np.any(new <= 0):
        raise ValueError(f"spacing must be positive, got {spacing_mm}")
    old = np.asarray(volume.spacing, dtype=np.float64)
    shape_old = np.asarray(volume.shape, dtype=np.float64)
    shape_new = np.maximum(1, np.round(shape_old * old / new)).astype(int)
    zoom = new / old
    # New index c lands on old index (c - (N_new - 1) / 2) * zoom + (N_old - 1) / 2.
    offset = (shape_old - 1) / 2 - zoom * (shape_new - 1) / 2
    step = np.eye(4)
    step[:3, :3] = np.diag(zoom)
    step[:3, 3] = offset
    affine = volume.affine @ step
    out_shape = (int(shape_new[0]), int(shape_new[1]), int(shape_new[2]))
    smooth = _smoothing(smooth_sigma, order)
    if smooth is not None:
        smoothed = smoothed_sample(
            volume.array, smooth, zoom, offset, out_shape, mode="nearest", cval=0.0
        )
        return Volume(smoothed, affine)
    if np.allclose(zoom, 1.0, atol=1e-9) and out_shape == volume.shape:
        return Volume(volume.array.copy(), volume.affine.copy())
    array = sample(volume.array, zoom, offset, out_shape, order, mode="nearest", cval=0.0)
    return Volume(array, affine)


def _smoothing(sigma: Sequence[float] | None, order: int) -> list[float] | None:
    """The anti-aliasing sigmas when any is positive, else ``None`` (plain sampling)."""
    if sigma is None:
        return None
    values = [float(s) for s in sigma]
    if len(values) != 3 or not all(np.isfinite(values)) or min(values) < 0:
        raise ValueError(f"smooth_sigma must be three non-negative numbers, got {sigma}")
    if max(values) <= 0:
        return None
    if order != 1:
        raise ValueError("smooth_sigma needs linear sampling (order 1)")
    return values


def resample_to_reference(
    moving: Volume,
    reference: Volume,
    order: int = 1,
    *,
    fill_value: float = 0.0,
    smooth_sigma: Sequence[float] | None = None,
) -> Volume:
    """Resample ``moving`` onto ``reference``'s grid through world (RAS+) coordinates.

    Each reference voxel centre is mapped to world millimetres with ``reference.affine`` and
    into ``moving``'s voxel space with the inverse of ``moving.affine``. When the two grids
    differ only by axis permutations, flips and whole-voxel shifts, values are copied exactly
    (no interpolation, whatever ``order``; the dtype is the same as interpolation would give).

    Parameters
    ----------
    moving
        Volume to resample.
    reference
        Volume whose grid (shape and affine) the result takes; its values are not used.
    order
        Spline order, 0 (nearest neighbour, label maps; keeps the dtype) to 5.
    fill_value
        Value for reference voxels outside ``moving``'s field of view (use e.g. -1024 for CT),
        cast to the output dtype.
    smooth_sigma
        Gaussian anti-aliasing before linear sampling (``order`` 1 only), in voxels of
        ``moving`` per axis, as for :func:`resample_to_spacing`: only the voxels the samples
        read are smoothed.

    Returns
    -------
    Volume
        Array of ``reference.shape`` with ``reference.affine``.
    """
    check_order(order)
    mapping = np.linalg.inv(moving.affine) @ reference.affine
    smooth = _smoothing(smooth_sigma, order)
    if smooth is not None:
        smoothed = smoothed_sample(
            moving.array,
            smooth,
            mapping[:3, :3],
            mapping[:3, 3],
            reference.shape,
            mode="constant",
            cval=fill_value,
        )
        return Volume(smoothed, reference.affine.copy())
    exact = exact_index_map(moving, reference, mapping, order, fill_value)
    if exact is not None:
        return Volume(exact, reference.affine.copy())
    array = sample(
        moving.array,
        mapping[:3, :3],
        mapping[:3, 3],
        reference.shape,
        order,
        mode="constant",
        cval=fill_value,
    )
    return Volume(array, reference.affine.copy())
