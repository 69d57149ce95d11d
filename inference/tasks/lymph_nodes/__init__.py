"""Lymph-node metastasis with distance-guided attention (issue 24, METHOD.md section 3).

After Lymph-node metastasis prediction in pancreatic cancer using distance-guided attention
(``seeds/ln_metastasis_distance_attention.txt``):

- :mod:`~inference.tasks.lymph_nodes.attention`: signed distances, the trapezoid mapping
  (Eq. 1) and ``A^all`` (Eq. 2), numpy/scipy only;
- :mod:`~inference.tasks.lymph_nodes.model`: the organ & vessel segmenter, the node
  segmentation network (attention on or off) and the node classifier;
- :mod:`~inference.tasks.lymph_nodes.patient`: the tumor slices and the patient-level model
  (III-B);
- :mod:`~inference.tasks.lymph_nodes.nodes`: node instances, their axes and volume, and the
  IoU >= 0.3 matching;
- :mod:`~inference.tasks.lymph_nodes.stations`: the JPS station of a node;
- :mod:`~inference.tasks.lymph_nodes.bundle`: the bundle format;
- :mod:`~inference.tasks.lymph_nodes.task`: :class:`~inference.tasks.lymph_nodes.task.
  LymphNodeModel`, which returns a :class:`~inference.tasks.lymph_nodes.task.LymphNodeResult`.

Not registered in :data:`inference.tasks.TASKS` yet: the analysis pipeline, ``result.json``
and the DICOM writers do not use it. Importing this package does not import torch.
"""

from __future__ import annotations

__all__ = ["NAME"]

#: The task's name (``bundle.json``'s ``task``; the folder is ``lymph_nodes``).
NAME = "lymph-nodes"
