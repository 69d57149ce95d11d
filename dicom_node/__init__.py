"""dicom_node room: the node's DICOM front door, worker loop and command line.

Owns the SCP, association policy, spool, series assembly, routing rules and dispatch.
Never imports torch: analysis is reached through the ``inference`` package's public API.
"""

from dicom_node.metrics import MetricsServer, NodeMetrics, start_metrics_server

__all__: list[str] = ["MetricsServer", "NodeMetrics", "start_metrics_server"]
