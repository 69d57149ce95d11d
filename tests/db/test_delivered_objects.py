"""Delivered objects: per-object delivery records (issue 22, D4; both backends)."""

from __future__ import annotations

import pytest

from db import (
    DeliveryProtocol,
    NodeDatabase,
    delivered_objects,
    enqueue_job,
    record_delivered_object,
)

ORTHANC = "ORTHANC@127.0.0.1:4242"
STOW = "http://127.0.0.1:8042/dicom-web"


def _job(db: NodeDatabase, series: str = "1.2.3") -> str:
    return enqueue_job(db, series, 1, "d" * 64).job.id


def test_objects_are_recorded_once_per_job_and_destination(node_db: NodeDatabase) -> None:
    job_id = _job(node_db)
    assert delivered_objects(node_db, job_id, ORTHANC) == frozenset()

    def record(destination: str, uid: str) -> bool:
        protocol = DeliveryProtocol.STOW_RS if destination == STOW else DeliveryProtocol.C_STORE
        return record_delivered_object(
            node_db, job_id, destination=destination, protocol=protocol, sop_instance_uid=uid
        )

    assert record(ORTHANC, "1.2.3.1") is True
    assert record(ORTHANC, "1.2.3.2") is True
    # A second record of the same object (a retry's acknowledgement) is no error and no row.
    assert record(ORTHANC, "1.2.3.1") is False
    assert record(STOW, "1.2.3.1") is True

    assert delivered_objects(node_db, job_id, ORTHANC) == {"1.2.3.1", "1.2.3.2"}
    assert delivered_objects(node_db, job_id, STOW) == {"1.2.3.1"}
    other = _job(node_db, "1.2.4")
    assert delivered_objects(node_db, other, ORTHANC) == frozenset()


def test_recording_for_an_unknown_job_or_a_bad_uid_is_refused(node_db: NodeDatabase) -> None:
    with pytest.raises(LookupError):
        record_delivered_object(
            node_db,
            "no-such-job",
            destination=ORTHANC,
            protocol=DeliveryProtocol.C_STORE,
            sop_instance_uid="1.2.3",
        )
    job_id = _job(node_db)
    for bad in ("", "1." * 40):
        with pytest.raises(ValueError, match=r"PS3\.5"):
            record_delivered_object(
                node_db,
                job_id,
                destination=ORTHANC,
                protocol=DeliveryProtocol.C_STORE,
                sop_instance_uid=bad,
            )
    assert delivered_objects(node_db, job_id, ORTHANC) == frozenset()
