"""orthanc_plugin room: Orthanc as the node's PACS face.

The Python plugin that ``orthanc-python`` loads inside Orthanc (:mod:`orthanc_plugin.plugin`,
started by :data:`ENTRY_SCRIPT`): the stable-series trigger, the ``/pancreas-ai/`` routes and
the study labels. It reads the node database through ``db`` and never imports torch, the
model rooms or ``dicom_node``; the launcher that starts Orthanc with it lives in the command
line room (``pancreas_node.orthanc_server``).
"""

from pathlib import Path

__all__ = ["ENTRY_SCRIPT"]

#: The script Orthanc's Python plugin executes (``PythonScript`` in Orthanc's configuration).
ENTRY_SCRIPT = Path(__file__).resolve().parent / "_entry.py"
