"""nnU-Net's planning rules for the detection networks' kernels, strides and widths.

The detection task does not depend on ``nnunetv2`` (a heavy framework with its own data
layout, environment variables and trainer); its networks are MONAI's ``DynUNet``, which is
nnU-Net's architecture, configured by the rules nnU-Net's experiment planner applies to a
patch size and voxel spacing (Isensee et al., Nature Methods 2021, "rule-based parameters"):

- an axis is downsampled (stride 2) at a level only while its feature map keeps at least
  ``2 * min_feature_map`` voxels and its spacing is less than twice the finest current
  spacing, so that an anisotropic axis waits until the others have caught up;
- a kernel is 3 along axes whose spacing is less than twice the finest, else 1;
- the first level has stride 1; the number of pooling steps is capped at ``max_pools``;
- widths start at ``base_filters`` (nnU-Net: 32) and double per level up to ``max_filters``
  (nnU-Net: 320 in 3D).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NetworkPlan", "plan_network"]

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class NetworkPlan:
    """Kernel sizes, strides and widths of one DynUNet, one entry per level.

    Attributes
    ----------
    kernels
        Convolution kernel per level and axis.
    strides
        Downsampling stride per level and axis (the first is ``(1, 1, 1)``).
    filters
        Output channels per level.
    """

    kernels: tuple[Triple, ...]
    strides: tuple[Triple, ...]
    filters: tuple[int, ...]

    def __post_init__(self) -> None:
        if not len(self.kernels) == len(self.strides) == len(self.filters) >= 3:
            raise ValueError("a plan needs at least 3 levels, with one kernel/stride/width each")

    @property
    def levels(self) -> int:
        """Number of resolution levels (pooling steps + 1)."""
        return len(self.strides)

    def divisor(self) -> Triple:
        """Total downsampling per axis: input sizes must be multiples of it."""
        out = [1, 1, 1]
        for stride in self.strides:
            out = [o * s for o, s in zip(out, stride, strict=True)]
        return (out[0], out[1], out[2])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists)."""
        return {
            "kernels": [list(k) for k in self.kernels],
            "strides": [list(s) for s in self.strides],
            "filters": list(self.filters),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(_triple(k) for k in data["kernels"]),
            tuple(_triple(s) for s in data["strides"]),
            tuple(int(f) for f in data["filters"]),
        )


def _triple(values: Sequence[Any]) -> Triple:
    a, b, c = (int(v) for v in values)
    return (a, b, c)


def _kernel(spacing: Sequence[float]) -> Triple:
    finest = min(spacing)
    a, b, c = (3 if s / finest < 2.0 else 1 for s in spacing)
    return (a, b, c)


def plan_network(
    patch_size: Sequence[int],
    spacing: Sequence[float],
    *,
    base_filters: int = 32,
    max_filters: int = 320,
    min_feature_map: int = 4,
    max_pools: int = 5,
) -> NetworkPlan:
    """Plan a 3D DynUNet for ``patch_size`` voxels at ``spacing`` mm (see the module docstring).

    Parameters
    ----------
    patch_size
        Input voxels per axis.
    spacing
        Voxel size per axis in mm.
    base_filters, max_filters
        Width of the first level, and the cap of the doubling widths.
    min_feature_map
        Smallest feature map side an axis may be pooled down to.
    max_pools
        Most pooling steps.

    Returns
    -------
    NetworkPlan
        One kernel, stride and width per level.

    Raises
    ------
    ValueError
        If the patch is too small for two pooling steps, or an argument is out of range.
    """
    if len(patch_size) != 3 or len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError("patch_size and spacing need three positive entries")
    if base_filters < 1 or max_filters < base_filters or min_feature_map < 1 or max_pools < 2:
        raise ValueError("need base_filters >= 1, max_filters >= base_filters, max_pools >= 2")
    size = [int(n) for n in patch_size]
    current = [float(s) for s in spacing]
    kernels, strides = [_kernel(current)], [(1, 1, 1)]
    while len(strides) - 1 < max_pools:
        poolable = [i for i in range(3) if size[i] >= 2 * min_feature_map]
        if not poolable:
            break
        finest = min(current[i] for i in poolable)
        stride = tuple(2 if i in poolable and current[i] / finest < 2.0 else 1 for i in range(3))
        size = [n // s for n, s in zip(size, stride, strict=True)]
        current = [c * s for c, s in zip(current, stride, strict=True)]
        kernels.append(_kernel(current))
        strides.append(_triple(stride))
    if len(strides) < 3:
        raise ValueError(f"patch {tuple(patch_size)} is too small for two pooling steps")
    filters = tuple(min(base_filters * 2**level, max_filters) for level in range(len(strides)))
    return NetworkPlan(tuple(kernels), tuple(strides), filters)
