"""NCCN resectability (``docs/method.md``, section 1): the first analysis task.

- :mod:`~inference.tasks.resectability.model`: the multimodal Swin-UNETR (segmentation of the
  16 labels + the three-class NCCN head fused with the 17 clinical variables);
- :mod:`~inference.tasks.resectability.measurements`: tumor size and tumor-vessel contact
  angles read off a label map, and the NCCN rule category (``pancreas_contracts.nccn``);
- :mod:`~inference.tasks.resectability.task`: :class:`ResectabilityTask`, the task protocol's
  implementation (cube, ensemble, post-processing, measurements, result fields).

:func:`build_task` is the task's registration in :data:`inference.tasks.TASKS`; it imports
torch only when called, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inference.tasks.protocol import AnalysisTask

if TYPE_CHECKING:
    import torch

    from inference.bundle import LoadedBundle

__all__ = ["NAME", "build_task"]

#: The task's name (its folder, its key in ``result.timings_s`` stages and in the registry).
NAME = "resectability"


def build_task(bundle: LoadedBundle, device: torch.device) -> AnalysisTask:
    """The resectability task for ``bundle`` on ``device``.

    Raises
    ------
    inference.bundle.BundleError
        If the bundle does not fit the node's clinical specification.
    """
    from inference.tasks.resectability.task import ResectabilityTask

    return ResectabilityTask(bundle, device)
