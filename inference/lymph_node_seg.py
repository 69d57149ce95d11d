"""The SEG of the lymph nodes the lymph-node model reports (result 1.6, issue 24).

A Segmentation (PS3.3 A.51) series of its own, ``seg-lymph-nodes.dcm`` (Series Number
:data:`~inference.dicom_codes.LYMPH_NODE_SEG_SERIES_NUMBER` 9005), with **one segment per
reported node**, not one segment for all suspicious nodes and one for the others: each node
is a TID 1411 Volumetric ROI of the SR (PS3.16) whose volume and axes are that node's, and a
TID 1411 group refers to exactly one segment (its ROI), so a segment holding several nodes
could not carry one node's measurements. One segment per node also lets a viewer jump to each
node. Whether a node is suspicious is in its Segment Label (``"Suspicious lymph node 2
(station 8a, p 0.71)"`` / ``"Lymph node 3 (station 14p, p 0.12)"``) and its colour (red /
blue); its Tracking ID is ``lymph-node-<node_id>`` (what the SR and the viewer match on).

Every segment: Segmented Property Category SCT 91723000 *Anatomical structure* (CID 7150),
Type SCT 59441001 *Lymph node* (CID 7166), algorithm AUTOMATIC with the lymph-node bundle's
Algorithm Identification (PS3.3 Table 10-19).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from inference._writer_common import algorithm_sequence
from inference.dicom_codes import (
    LYMPH_NODE,
    LYMPH_NODE_CATEGORY,
    LYMPH_NODE_SEG_SERIES_DESCRIPTION,
    LYMPH_NODE_SEG_SERIES_NUMBER,
)
from inference.seg_writer import (
    SeriesText,
    cut_frames,
    present_values,
    renumber,
    segmentation_from_frames,
)
from inference.volume import Volume
from pancreas_contracts.lymph_nodes import LymphNodeFinding
from pancreas_contracts.result import BundleRef

__all__ = ["build_lymph_node_seg", "node_segments", "node_tracking_id"]

#: Display colours (RGB): a suspicious node red, another node blue.
_SUSPICIOUS_RGB: Final = (230, 40, 40)
_NODE_RGB: Final = (60, 140, 255)


def node_tracking_id(node_id: int) -> str:
    """The Tracking ID of node ``node_id``'s segment."""
    return f"lymph-node-{node_id}"


def _segment_label(finding: LymphNodeFinding) -> str:
    kind = "Suspicious lymph node" if finding.suspicious else "Lymph node"
    station = f"station {finding.station}" if finding.station else "no station"
    return f"{kind} {finding.node_id} ({station}, p {finding.probability:.2f})"[:64]


def build_lymph_node_seg(
    nodes: Volume,
    findings: Sequence[LymphNodeFinding],
    headers: Sequence[Dataset],
    model: BundleRef,
    *,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> hd.seg.Segmentation:
    """The lymph-node SEG (see the module docstring).

    Parameters
    ----------
    nodes
        ``node_id`` where that node is, 0 elsewhere, on the source grid like a label map.
    findings
        The reported nodes (``result.lymph_nodes.nodes``).
    headers
        Source image headers (one per instance).
    model
        The lymph-node bundle (Algorithm Identification, equipment).
    sop_instance_uid, series_instance_uid
        UIDs of the new object (default: new UIDs).

    Raises
    ------
    ValueError
        If no node voxel falls on the source images, or a value is no reported node's id.
    """
    frames, span = cut_frames(nodes, headers)
    present = present_values(frames[span])
    if not present:
        raise ValueError("no lymph node lies on the source images")
    by_id = {finding.node_id: finding for finding in findings}
    if any(value not in by_id for value in present):
        raise ValueError("a node value is no reported node's id")
    lookup = np.zeros(present[-1] + 1, dtype=np.uint8)
    algorithm = algorithm_sequence(model)
    descriptions = []
    for number, value in enumerate(present, start=1):
        lookup[value] = number
        finding = by_id[value]
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=_segment_label(finding),
                segmented_property_category=LYMPH_NODE_CATEGORY,
                segmented_property_type=LYMPH_NODE,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=generate_uid(),
                tracking_id=node_tracking_id(value),
                display_color=hd.color.CIELabColor.from_rgb(
                    *(_SUSPICIOUS_RGB if finding.suspicious else _NODE_RGB)
                ),
            )
        )
    text = LYMPH_NODE_SEG_SERIES_DESCRIPTION
    return segmentation_from_frames(
        renumber(frames, lookup, span),
        descriptions,
        headers,
        model,
        SeriesText(LYMPH_NODE_SEG_SERIES_NUMBER, text, text),
        omit_empty_frames=True,
        sop_instance_uid=sop_instance_uid,
        series_instance_uid=series_instance_uid,
    )


def node_segments(seg: Dataset) -> dict[int, tuple[int, str]]:
    """Segment number and Tracking UID of each node of a lymph-node SEG, by ``node_id``."""
    found: dict[int, tuple[int, str]] = {}
    for item in seg.get("SegmentSequence", []):
        tracking = str(item.get("TrackingID", ""))
        prefix = node_tracking_id(0)[:-1]
        if tracking.startswith(prefix) and tracking[len(prefix) :].isdigit():
            uid = str(item.get("TrackingUID", "")) or generate_uid()
            found[int(tracking[len(prefix) :])] = (int(item.SegmentNumber), uid)
    return found
