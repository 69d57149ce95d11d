"""orthanc_plugin room: Orthanc as the node's PACS face.

The Python plugin that ``orthanc-python`` loads inside Orthanc (:mod:`orthanc_plugin.plugin`,
started by :data:`ENTRY_SCRIPT`): the stable-series trigger, the ``/pancreas-ai/`` routes and
the study labels. It reads the node database through ``db`` and never imports torch, the
model rooms or ``dicom_node``; the launcher that starts Orthanc with it lives in the command
line room (``pancreas_node.orthanc_server``).

The tumor board's decision CSV is also written outside Orthanc (``pancreas-node board csv``):
:func:`case_rows` collects a board's cases from the node database and :func:`decisions_csv`
writes them, exactly as ``GET /pancreas-ai/boards/{id}/decisions.csv`` does. The published
API description is :data:`OPENAPI_PATH` (``GET /pancreas-ai/openapi.json``).
"""

from pathlib import Path

from orthanc_plugin._board_csv import CSV_COLUMNS, decisions_csv
from orthanc_plugin._board_json import CaseRow, case_rows
from orthanc_plugin._boards import EVENT_TEXT, OPENAPI_PATH, VERDICT_TEXT, vocabulary
from orthanc_plugin._reviews import Correction, CorrectionFrame

__all__ = [
    "CSV_COLUMNS",
    "ENTRY_SCRIPT",
    "EVENT_TEXT",
    "OPENAPI_PATH",
    "VERDICT_TEXT",
    "CaseRow",
    "Correction",
    "CorrectionFrame",
    "case_rows",
    "decisions_csv",
    "vocabulary",
]

#: The script Orthanc's Python plugin executes (``PythonScript`` in Orthanc's configuration).
ENTRY_SCRIPT = Path(__file__).resolve().parent / "_entry.py"
