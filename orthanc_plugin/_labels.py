"""Study labels in Orthanc: metadata on every version, the labels API from Orthanc 1.12.

Orthanc 1.10 (Debian 12) has no labels. The plugin always writes two user metadata on the
study, declared in ``UserMetadata`` of ``deploy/orthanc/orthanc.json.in``:
``PancreasAiStatus`` (a :class:`pancreas_contracts.status.StudyStatus` word but ``none``) and
``PancreasAiCategory`` (``nccn-...``, removed when there is none). On Orthanc 1.12 or later
(``/system`` ``Version``) it also sets the same names as real labels, which Orthanc Explorer 2
and ``/tools/find`` can filter on; labels other than its own are left alone.
"""

from __future__ import annotations

import re

from orthanc_plugin._orthanc_api import OrthancCallError, RestApi, get_json
from orthanc_plugin._status import MANAGED_LABELS, AiStatus, StudyLabels

__all__ = [
    "CATEGORY_METADATA",
    "STATUS_METADATA",
    "apply_labels",
    "read_labels",
    "supports_labels_api",
]

STATUS_METADATA = "PancreasAiStatus"
CATEGORY_METADATA = "PancreasAiCategory"


def supports_labels_api(version: str) -> bool:
    """Whether an Orthanc ``/system`` ``Version`` has the labels API (1.12.0 or later).

    ``mainline`` (a development build) counts as the newest version.
    """
    if version.strip().lower() == "mainline":
        return True
    match = re.match(r"^\s*(\d+)\.(\d+)", version)
    return match is not None and (int(match[1]), int(match[2])) >= (1, 12)


def _put_metadata(api: RestApi, study_id: str, name: str, value: str | None) -> None:
    path = f"/studies/{study_id}/metadata/{name}"
    if value is not None:
        api.put(path, value.encode("utf-8"))
        return
    try:
        api.delete(path)
    except OrthancCallError as exc:
        if not exc.not_found:
            raise


def apply_labels(api: RestApi, study_id: str, labels: StudyLabels, *, use_labels_api: bool) -> None:
    """Write ``labels`` on the Orthanc study ``study_id``.

    Raises
    ------
    OrthancCallError
        If Orthanc refuses a write (``not_found`` when the study was deleted).
    """
    status = None if labels.status is AiStatus.NONE else labels.status.value
    # The category first: a reader that sees the new status also sees its category.
    _put_metadata(api, study_id, CATEGORY_METADATA, labels.category)
    _put_metadata(api, study_id, STATUS_METADATA, status)
    if not use_labels_api:
        return
    current = set(get_json(api, f"/studies/{study_id}/labels"))
    wanted = set(labels.labels)
    for name in MANAGED_LABELS:
        if name in current and name not in wanted:
            api.delete(f"/studies/{study_id}/labels/{name}")
        elif name in wanted and name not in current:
            api.put(f"/studies/{study_id}/labels/{name}", b"")


def read_labels(api: RestApi, study_id: str) -> tuple[str, ...]:
    """The plugin's labels of a study as Orthanc holds them (metadata on Orthanc 1.10).

    Raises
    ------
    OrthancCallError
        If the study does not exist.
    """
    metadata = get_json(api, f"/studies/{study_id}/metadata?expand")
    names = [metadata.get(STATUS_METADATA), metadata.get(CATEGORY_METADATA)]
    return tuple(n for n in names if isinstance(n, str) and n in MANAGED_LABELS)
