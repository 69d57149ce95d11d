"""The lymph-node files of a phantom patient and their ``truth.csv`` columns.

With nodes on (:attr:`~phantom._options.PhantomOptions.nodes_on`) every patient folder gets
``organs.nii.gz`` (the ten attention structures, values of ``ATTENTION_STRUCTURES``, on the
label map's grid), ``nodes.nii.gz`` (instance map: 0 background, k the node with ``node_id``
k) and ``lymph_nodes.json`` (a JSON list of ``NodeTruth``), and ``truth.csv`` gains
:data:`NODE_COLUMNS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from inference.volume import Volume, write_nifti
from pancreas_contracts.lymph_nodes import LYMPH_NODES_FILE, NODES_FILE, ORGANS_FILE
from phantom._render import PhantomScan

__all__ = ["NODE_COLUMNS", "node_cells", "write_node_files"]

#: ``truth.csv`` columns with nodes on: N status (0/1), nodes and positive nodes in the scan.
NODE_COLUMNS: Final = ("n_status", "node_count", "positive_nodes")
_FILES: Final = (ORGANS_FILE, NODES_FILE, LYMPH_NODES_FILE)

ToVolume = Callable[[npt.NDArray[np.generic]], Volume]


def node_cells(scan: PhantomScan) -> dict[str, str]:
    """The :data:`NODE_COLUMNS` of one patient: N+ exactly when a positive node was placed."""
    positive = sum(node.metastatic for node in scan.nodes)
    return {
        "n_status": str(int(positive > 0)),
        "node_count": str(len(scan.nodes)),
        "positive_nodes": str(positive),
    }


def write_node_files(scan: PhantomScan, root: Path, to_volume: ToVolume) -> tuple[Path, ...]:
    """Write the patient's node files into ``root`` (or remove stale ones: nodes off).

    Parameters
    ----------
    scan
        The rendered patient.
    root
        The patient's folder.
    to_volume
        Turns a ``[k, r, c]`` array into the volume written to NIfTI (the label map's grid).

    Returns
    -------
    tuple of Path
        ``organs.nii.gz``, ``nodes.nii.gz`` and ``lymph_nodes.json``; empty with nodes off.
    """
    if scan.organs is None or scan.node_mask is None:
        for name in _FILES:
            (root / name).unlink(missing_ok=True)
        return ()
    paths = tuple(root / name for name in _FILES)
    write_nifti(to_volume(scan.organs), paths[0])
    write_nifti(to_volume(scan.node_mask), paths[1])
    document = [node.model_dump(mode="json") for node in scan.nodes]
    paths[2].write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return paths
