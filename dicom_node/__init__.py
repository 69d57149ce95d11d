"""dicom_node room: the node's DICOM front door, worker loop and command line.

Owns the SCP, association policy, spool, series assembly, routing rules and dispatch.
Never imports torch: analysis is reached through the ``inference`` package's public API.
"""

__all__: list[str] = []
