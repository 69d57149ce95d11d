"""The radiologist's review routes (issue 26; the contract is docs/tumor-board.md).

``GET|POST /pancreas-ai/studies/{study}/reviews``
    The study's reviews (oldest first) and the boards it is on; record an ``agree`` or an
    ``override`` (201; 409 when the study has no AI result to review).
``POST /pancreas-ai/studies/{study}/corrections``
    A segmentation correction edited in OHIF (:class:`Correction`): validated, written to
    ``<data>/corrections/<uuid>.json`` atomically, recorded as a ``correct`` review whose
    correction is ``pending`` (202); the node's correction writer turns it into a new SEG
    version and an SR amendment.

A review that disagrees with the node (``disagrees`` in the answer) is reported by the
database layer, which tells people about it (notifications); the routes send nothing
themselves, and log no reason text.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from db import list_board_cases, list_boards, list_reviews, record_review
from orthanc_plugin._board_json import ORIGIN, decision_json, error, parse_body, review_json
from orthanc_plugin._node import NodeContext
from orthanc_plugin._routes import Request, Response, RouteTable
from pancreas_contracts.boards import MAX_FREE_TEXT, BoardCategory, ReviewInput, ReviewVerdict

__all__ = [
    "MAX_CORRECTION_BYTES",
    "MAX_FRAMES",
    "MAX_MATRIX",
    "Correction",
    "CorrectionFrame",
    "ReviewRoutes",
    "write_atomically",
]

_log = logging.getLogger(__name__)
#: The largest correction body accepted (a 512 x 512 x 2000 label map as runs fits easily).
MAX_CORRECTION_BYTES = 256 * 1024 * 1024
#: The most CT images one correction may carry.
MAX_FRAMES = 2000
#: The largest image side (rows, columns).
MAX_MATRIX = 4096

Uid = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")]
SegmentNumber = Annotated[int, Field(strict=True, ge=0, le=255)]
RunLength = Annotated[int, Field(strict=True, ge=0)]
ImageSide = Annotated[int, Field(strict=True, ge=1, le=MAX_MATRIX)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CorrectionFrame(_Frozen):
    """One CT image's corrected label map as ``[segment number, run length]`` pairs."""

    sop_instance_uid: Uid
    rle: tuple[tuple[SegmentNumber, RunLength], ...] = Field(min_length=1)


class Correction(_Frozen):
    """A segmentation correction as the viewer sends it (docs/tumor-board.md).

    ``rle`` runs are in row-major order (row 0 first, column fastest) and sum to
    ``rows x columns`` in every frame; segment numbers are the AI SEG's (0 is background).
    """

    reason: str = Field(min_length=1, max_length=MAX_FREE_TEXT)
    category: BoardCategory | None = None
    based_on_seg_sop_instance_uid: Uid
    referenced_series_instance_uid: Uid
    rows: ImageSide
    columns: ImageSide
    frames: tuple[CorrectionFrame, ...] = Field(min_length=1, max_length=MAX_FRAMES)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("a segmentation correction needs a reason")
        return stripped

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        pixels = self.rows * self.columns
        seen: set[str] = set()
        for index, frame in enumerate(self.frames):
            total = sum(length for _, length in frame.rle)
            if total != pixels:
                raise ValueError(
                    f"frames[{index}]: the run lengths sum to {total}, "
                    f"not rows x columns = {pixels}"
                )
            if frame.sop_instance_uid in seen:
                raise ValueError(f"frames[{index}]: its SOPInstanceUID is listed twice")
            seen.add(frame.sop_instance_uid)
        return self


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see all of it or nothing (even after a
    crash): a temporary file in the same folder, flushed and synced, then renamed.

    Raises
    ------
    OSError
        If the folder cannot be created or written (the temporary file is removed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


@dataclass(frozen=True)
class ReviewRoutes:
    """The review routes, built once by the plugin and added with ``Routes.extend``.

    Parameters
    ----------
    node
        The node's settings (``data_dir``: the corrections) and database.
    resolve_study
        ``(Orthanc id, StudyInstanceUID)`` of a study named either way.
    """

    node: NodeContext
    resolve_study: Callable[[str], tuple[str | None, str | None]]

    def table(self) -> RouteTable:
        """The routes, for :meth:`orthanc_plugin._routes.Routes.extend`."""
        study = r"^/pancreas-ai/studies/([^/]+)"
        return [
            (re.compile(study + "/reviews$"), {"GET": self.reviews, "POST": self.review}),
            (re.compile(study + "/corrections$"), {"POST": self.correction}),
        ]

    def _uid(self, ident: str) -> str | None:
        return self.resolve_study(ident)[1]

    def _boards_of(self, uid: str) -> list[dict[str, Any]]:
        refs: list[dict[str, Any]] = []
        for board in list_boards(self.node.database):
            for case in list_board_cases(self.node.database, board.id):
                if case.study_instance_uid == uid:
                    refs.append(
                        {
                            "board_id": board.id,
                            "board_date": board.board_date.isoformat(),
                            "title": board.title,
                            "position": case.position,
                            "decision": decision_json(case.decision),
                        }
                    )
        return refs

    def reviews(self, request: Request, ident: str) -> Response:
        """``GET /pancreas-ai/studies/{study}/reviews``."""
        uid = self._uid(ident)
        if uid is None:
            return error(404, "study unknown to Orthanc")
        reviews = [review_json(r) for r in list_reviews(self.node.database, uid)]
        return Response(
            200, {"study_instance_uid": uid, "reviews": reviews, "boards": self._boards_of(uid)}
        )

    def review(self, request: Request, ident: str) -> Response:
        """``POST /pancreas-ai/studies/{study}/reviews``: ``agree`` or ``override`` (201)."""
        uid = self._uid(ident)
        if uid is None:
            return error(404, "study unknown to Orthanc")
        body = parse_body(request, ReviewInput)
        if isinstance(body, Response):
            return body
        if body.verdict is ReviewVerdict.CORRECT:
            where = f"/pancreas-ai/studies/{ident}/corrections"
            return error(400, f"a segmentation correction goes to POST {where}")
        try:
            info = record_review(
                self.node.database, uid, body, actor=f"orthanc:{request.user}", origin=ORIGIN
            )
        except LookupError:
            return error(409, "the study has no AI result to review")
        return Response(201, review_json(info))

    def correction(self, request: Request, ident: str) -> Response:
        """``POST /pancreas-ai/studies/{study}/corrections``: 202 with the pending review."""
        if len(request.body) > MAX_CORRECTION_BYTES:
            return error(413, f"a correction is at most {MAX_CORRECTION_BYTES} bytes")
        uid = self._uid(ident)
        if uid is None:
            return error(404, "study unknown to Orthanc")
        body = parse_body(request, Correction)
        if isinstance(body, Response):
            return body
        try:
            review = ReviewInput(
                verdict=ReviewVerdict.CORRECT, category=body.category, reason=body.reason
            )
        except ValidationError:
            return error(400, "invalid body: a segmentation correction needs a reason")
        path = self.node.settings.data_dir / "corrections" / f"{uuid.uuid4().hex}.json"
        write_atomically(path, body.model_dump_json().encode("utf-8"))
        try:
            info = record_review(
                self.node.database, uid, review, actor=f"orthanc:{request.user}",
                origin=ORIGIN, correction_path=str(path.resolve()),
            )  # fmt: skip
        except LookupError:
            path.unlink(missing_ok=True)
            return error(409, "the study has no AI result to review")
        except BaseException:
            path.unlink(missing_ok=True)  # no review points at it: leave no orphan behind
            raise
        _log.info("segmentation correction %d recorded (%d frames)", info.id, len(body.frames))
        return Response(202, review_json(info))
