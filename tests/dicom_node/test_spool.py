"""Start-up reconciliation of spool and database (issue 22, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from db import list_audit_events
from db._models import Instance
from dicom_node.node import Node
from tests.dicom_node.conftest import PhantomSeries, node_settings
from tests.dicom_node.test_scp import storescu

pytestmark = pytest.mark.integration


def test_orphans_are_quarantined_and_rows_without_files_flagged(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    settings = node_settings(tmp_path)
    with Node(settings) as node:
        assert storescu(node.scp.port, *ct_series.files[:3]).returncode == 0
    series_dir = settings.spool_dir / ct_series.StudyInstanceUID / ct_series.SeriesInstanceUID
    stored = sorted(series_dir.glob("*.dcm"))
    assert len(stored) == 3
    # A crash between the spool write and the commit leaves a file no row names ...
    orphan = series_dir / "1.2.3.4.5.dcm"
    orphan.write_bytes(stored[0].read_bytes())
    # ... and a lost disk block leaves a row without its file.
    stored[1].unlink()
    with Node(settings) as node:
        quarantined = settings.data_dir / "quarantine"
        assert not orphan.exists()
        assert [p.name for p in quarantined.rglob("*.dcm")] == [orphan.name]
        with node.database.session() as session:
            flagged = session.scalars(
                select(Instance.spool_path).where(Instance.file_missing.is_(True))
            ).all()
        assert flagged == [str(stored[1])]
        events = list_audit_events(node.database, object_type="instance")
        assert [e.action for e in events] == ["instance.file_missing"]
        assert stored[0].exists() and stored[2].exists()
