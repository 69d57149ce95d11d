"""PDAC detection (``docs/detection.md``, METHOD.md section 2): is there a PDAC, and where?

- :mod:`~inference.tasks.detection.planning`: nnU-Net's planning rules for MONAI's DynUNet;
- :mod:`~inference.tasks.detection.model`: stage 1 (low-resolution pancreas segmenter) and
  stage 2 (:class:`~inference.tasks.detection.model.MultiTaskNet`: lesion segmentation and an
  FPN PDAC classifier);
- :mod:`~inference.tasks.detection.roi`: the two stages' cubes;
- :mod:`~inference.tasks.detection.lesions`: lesion candidates, the detection map and what is
  reported of each lesion;
- :mod:`~inference.tasks.detection.scoring`: the patient score and its ablation;
- :mod:`~inference.tasks.detection.bundle`: the bundle format;
- :mod:`~inference.tasks.detection.task`: :class:`~inference.tasks.detection.task.
  DetectionModel`, which returns a :class:`~inference.tasks.detection.task.DetectionResult`.

Not registered in :data:`inference.tasks.TASKS` yet: the analysis pipeline, ``result.json``
and the DICOM writers do not use it. Importing this package does not import torch.
"""

from __future__ import annotations

__all__ = ["NAME"]

#: The task's name (its folder; ``bundle.json``'s ``task``).
NAME = "detection"
