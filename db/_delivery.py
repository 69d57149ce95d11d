"""Delivered objects: which result objects each destination has confirmed (issue 22, D4).

A delivery attempt (:func:`db.record_delivery_attempt`) is recorded once a whole batch has been
tried; these rows are committed per object, right after the destination's acknowledgement, so
that a retry after a crash sends only what was not confirmed.
"""

from __future__ import annotations

from sqlalchemy import select

from db._audit import insert_ignore
from db._database import NodeDatabase
from db._models import DeliveredObject, DeliveryProtocol, Job
from db._types import utcnow

__all__ = ["delivered_objects", "record_delivered_object"]


def record_delivered_object(
    db: NodeDatabase,
    job_id: str,
    *,
    destination: str,
    protocol: DeliveryProtocol,
    sop_instance_uid: str,
) -> bool:
    """Record, in its own transaction, that ``destination`` stored one of ``job_id``'s objects.

    Parameters
    ----------
    job_id
        The job whose result object it is.
    destination, protocol
        The destination's recorded name and how it was reached.
    sop_instance_uid
        The object's SOPInstanceUID.

    Returns
    -------
    bool
        ``True`` if recorded now, ``False`` if it already was (recording twice is harmless).

    Raises
    ------
    LookupError
        If there is no job ``job_id``.
    ValueError
        If ``sop_instance_uid`` is empty or longer than a UID may be (PS3.5 9.1).
    """
    if not 0 < len(sop_instance_uid) <= 64:
        raise ValueError("sop_instance_uid must be 1-64 characters (PS3.5 9.1)")
    with db.session() as session:
        if session.get(Job, job_id) is None:
            raise LookupError(f"no job {job_id}")
        return insert_ignore(
            session,
            DeliveredObject.__table__,  # type: ignore[arg-type]
            {
                "job_id": job_id,
                "destination": destination[:256],
                "protocol": protocol,
                "sop_instance_uid": sop_instance_uid,
                "delivered_at": utcnow(),
            },
            ("job_id", "destination", "sop_instance_uid"),
        )


def delivered_objects(db: NodeDatabase, job_id: str, destination: str) -> frozenset[str]:
    """The SOPInstanceUIDs of ``job_id``'s objects that ``destination`` has confirmed."""
    stmt = select(DeliveredObject.sop_instance_uid).where(
        DeliveredObject.job_id == job_id, DeliveredObject.destination == destination[:256]
    )
    with db.session() as session:
        return frozenset(session.scalars(stmt))
