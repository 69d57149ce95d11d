"""The completed analysis the worker and queue tests' fake runners return."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from db import NewResult
from dicom_node.worker import JobOutcome


def fake_outcome(
    result_json_path: Path | str,
    bundle_sha256: str,
    timings_s: Mapping[str, float] | None = None,
) -> JobOutcome:
    """A borderline result without files, with ``timings_s`` as its stage timings."""
    return JobOutcome(
        NewResult(
            result_json_path=str(result_json_path),
            bundle_name="test",
            bundle_version="0",
            bundle_sha256=bundle_sha256,
            category=1,
            category_label="borderline",
            probabilities=(0.2, 0.7, 0.1),
            timings_s=dict(timings_s or {}),
        )
    )
