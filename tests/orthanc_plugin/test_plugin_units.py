"""The plugin's parts that run without Orthanc: configuration, store, status, I/O.

The submitter and the worklist have their own modules (``test_submit.py``,
``test_worklist_units.py``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from db import JobInfo, RoutingDecision, SeriesInfo, SeriesStatus, StudyJobInfo
from orthanc_plugin._config import PluginConfig, plugin_config
from orthanc_plugin._labels import apply_labels, supports_labels_api
from orthanc_plugin._orthanc_api import OrthancCallError, send_json
from orthanc_plugin._routes import Request
from orthanc_plugin._status import (
    MANAGED_LABELS,
    AiStatus,
    SeriesProgress,
    StudyLabels,
    category_name,
    progress_reason,
    series_progress,
    study_labels,
)
from orthanc_plugin._store import NewSubmission, Submission, SubmissionState, SubmissionStore
from orthanc_plugin._submit import FORWARDED, fingerprint
from pancreas_contracts import JobState
from pancreas_contracts.status import StudyStatus
from pancreas_node.orthanc_server import OrthancConfig, PythonPluginConfig
from tests.orthanc_plugin.unit_helpers import T0, job


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new(series: str = "s1", mark: str = "f1", forward: bool = True) -> NewSubmission:
    note = FORWARDED if forward else "not forwarded: modality SEG: the node analyses CT only"
    return NewSubmission(series, "1.2." + series, "study", "1.2.3", mark, 20, forward, note)


def series(
    decision: RoutingDecision = RoutingDecision.ANALYZE, reason: str | None = None
) -> SeriesInfo:
    return SeriesInfo(
        series_instance_uid="1.2.s1",
        study_instance_uid="1.2.3",
        modality="CT",
        version=1,
        status=SeriesStatus.COMPLETE,
        routing_decision=decision,
        routing_reason=reason,
        instance_count=20,
        first_received_at=T0,
        last_received_at=T0,
        completed_at=T0,
    )


# -- configuration ---------------------------------------------------------------------------


def test_plugin_config_defaults_and_values(tmp_path: Path) -> None:
    config = plugin_config({"StorageDirectory": str(tmp_path)})
    assert config.state_file == tmp_path / "pancreas-ai-plugin.sqlite"
    assert config.node_modality == "pancreas_ai" and config.node_config is None
    assert config.write_users == ("admin",)
    section = {"RetryBaseSeconds": 2, "RetryMaxSeconds": 5, "NodeConfig": "/etc/node.toml"}
    config = plugin_config({"PancreasAI": section})
    assert config.node_config == Path("/etc/node.toml")
    assert [config.retry_delay_s(n) for n in (1, 2, 3, 50)] == [2.0, 4.0, 5.0, 5.0]
    for bad in ({"RetryBaseSeconds": 0}, {"WriteUsers": "admin"}, {"SubmitStableSeries": 1}):
        with pytest.raises(ValueError, match="PancreasAI"):
            plugin_config({"PancreasAI": bad})


def test_launcher_renders_the_plugin_section(tmp_path: Path) -> None:
    node = tmp_path / "node.toml"
    config = OrthancConfig(
        work_dir=tmp_path,
        http_port=1,
        dicom_port=2,
        python_plugin=PythonPluginConfig(node_config=node, venv=tmp_path / "venv"),
    )
    rendered = json.loads(config.render())
    assert rendered["PythonScript"].endswith("orthanc_plugin/_entry.py")
    assert rendered["Plugins"][-1].endswith("libOrthancPython.so")
    assert set(rendered["UserMetadata"]) == {"PancreasAiStatus", "PancreasAiCategory"}
    parsed = plugin_config(rendered)
    assert parsed.node_config == node.resolve()
    assert parsed.state_file.parent == (tmp_path / "storage").resolve()
    plain = json.loads(OrthancConfig(work_dir=tmp_path, http_port=1, dicom_port=2).render())
    assert plain["PythonScript"] == "" and plain["PancreasAI"] == {}
    assert not any("Python" in p for p in plain["Plugins"])


def test_labels_api_from_orthanc_1_12() -> None:
    assert not supports_labels_api("1.10.1")
    assert not supports_labels_api("1.11.3")
    assert supports_labels_api("1.12.0") and supports_labels_api("2.0.1")
    assert supports_labels_api("mainline")
    assert not supports_labels_api("garbage")


# -- store -----------------------------------------------------------------------------------


def test_store_records_each_fingerprint_once(tmp_path: Path) -> None:
    store = SubmissionStore(tmp_path / "state" / "plugin.sqlite")
    first = store.record(new())
    assert first is not None and first.state is SubmissionState.PENDING
    assert store.record(new()) is None
    assert store.known("s1", "f1") and not store.known("s1", "f2")
    kept_back = store.record(new("s2", forward=False))
    assert kept_back is not None and kept_back.state is SubmissionState.NOT_FORWARDED
    assert kept_back.next_attempt_at is None
    assert [s.id for s in store.due()] == [first.id]
    # The same series with more instances supersedes the pending record.
    second = store.record(new(mark="f2"))
    assert second is not None
    states = {
        (s.orthanc_series_id, s.fingerprint): s.state for s in store.study_submissions("study")
    }
    assert states[("s1", "f1")] is SubmissionState.SUPERSEDED
    assert states[("s2", "f1")] is SubmissionState.NOT_FORWARDED
    assert [s.id for s in store.due()] == [second.id]


def test_store_retries_survive_reopening(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "plugin.sqlite"
    store = SubmissionStore(path, clock)
    recorded = store.record(new())
    assert recorded is not None
    store.mark_retry(recorded.id, "node down", retry_at=1010.0)
    assert store.due() == [] and store.next_due_at() == 1010.0
    clock.now = 1011.0
    reopened = SubmissionStore(path, clock)
    (due,) = reopened.due()
    assert due.attempts == 1 and due.last_error == "node down"
    reopened.mark_submitted(due.id)
    assert reopened.next_due_at() is None
    assert reopened.counts()["submitted"] == 1
    assert reopened.resubmit_study("study") == 1
    (again,) = reopened.due()
    assert again.attempts == 0 and again.state is SubmissionState.PENDING
    reopened.mark_retry(again.id, "gave up", retry_at=None)
    assert reopened.counts()["failed"] == 1


def test_store_tracks_study_labels(tmp_path: Path) -> None:
    store = SubmissionStore(tmp_path / "plugin.sqlite")
    store.track_study("study", "1.2.3")
    assert [s.orthanc_study_id for s in store.tracked_studies()] == ["study"]
    store.set_study_labels("study", "ai-done", "nccn-resectable", final=True)
    assert store.tracked_studies() == []
    state = store.study("study")
    assert state is not None and state.category == "nccn-resectable" and state.final
    store.track_study("study", "1.2.3")
    assert store.tracked_studies()[0].status == "ai-done"


def test_fingerprint_ignores_order() -> None:
    assert fingerprint(["b", "a"]) == fingerprint(["a", "b"]) != fingerprint(["a"])


def test_store_reads_rows_of_the_routing_plugin_as_not_forwarded(tmp_path: Path) -> None:
    path = tmp_path / "plugin.sqlite"
    SubmissionStore(path).record(new(forward=False))
    with sqlite3.connect(path) as connection:  # a row as the plugin wrote it when it routed
        connection.execute("UPDATE submissions SET state = 'ignored', decision = 'ignore'")
    connection.close()
    (row,) = SubmissionStore(path).study_submissions("study")
    assert row.state is SubmissionState.NOT_FORWARDED and row.forwarding == "ignore"


# -- status ----------------------------------------------------------------------------------


def test_category_names() -> None:
    assert category_name(0, None) == "nccn-resectable"
    assert category_name(None, "Locally Advanced") == "nccn-locally-advanced"
    assert category_name(None, "locally-advanced") == "nccn-locally-advanced"
    assert category_name(None, None) is None and category_name(7, "x") is None


def test_newest_job_decides_the_status(tmp_path: Path) -> None:
    def rows(*jobs: JobInfo, category: int | None = None) -> list[StudyJobInfo]:
        return [StudyJobInfo(series(), j, category, None) for j in jobs]

    done = study_labels(rows(job(JobState.DONE), category=1), [])
    assert done.status is AiStatus.DONE and done.final
    assert done.labels == ("ai-done", "nccn-borderline")
    newer_pending = study_labels(
        rows(job(JobState.QUEUED, minutes=5), job(JobState.DONE), category=None), []
    )
    assert newer_pending.labels == ("ai-pending",) and not newer_pending.final
    retrying = study_labels(rows(job(JobState.FAILED, retry=True)), [])
    assert retrying.status is AiStatus.PENDING
    failed = study_labels(rows(job(JobState.FAILED)), [])
    assert failed.labels == ("ai-failed",) and failed.final


def test_refused_and_failed_jobs_carry_their_reason() -> None:
    refusal = "refused: not-localised: confidence 0.07, localisers_apart_mm 148, limit_mm 40"
    for state in (JobState.DONE, JobState.DELIVERED):
        rows = [StudyJobInfo(series(), job(state, reason=refusal), None, None)]
        refused = study_labels(rows, [])
        assert refused.status is StudyStatus.REFUSED and refused.final
        assert refused.labels == ("ai-refused",) and refused.category is None
        assert (
            refused.reason == "not-localised: confidence 0.07, localisers_apart_mm 148, limit_mm 40"
        )
        assert refused.text == "AI refused"
    failure = "failed at series after 3 attempts: series unavailable: no stored instances"
    failed = study_labels(
        [StudyJobInfo(series(), job(JobState.FAILED, reason=failure), 1, None)], []
    )
    assert failed.status is StudyStatus.FAILED and failed.reason == failure


def test_every_status_word_but_none_is_a_managed_label() -> None:
    assert AiStatus is StudyStatus
    assert {s.value for s in StudyStatus} - set(MANAGED_LABELS) == {"none"}


def test_submissions_decide_until_the_node_has_a_job(tmp_path: Path) -> None:
    clock = Clock()
    store = SubmissionStore(tmp_path / "plugin.sqlite", clock)
    recorded = store.record(new())
    assert recorded is not None
    subs = store.study_submissions("study")
    assert study_labels([], subs).status is AiStatus.PENDING
    store.mark_submitted(recorded.id)
    subs = store.study_submissions("study")
    assert study_labels([], subs).status is AiStatus.PENDING  # node has not closed it yet
    skipped = [StudyJobInfo(series(RoutingDecision.SKIP), None, None, None)]
    assert study_labels(skipped, subs).status is AiStatus.SKIPPED
    store.resubmit_study("study")
    (pending,) = store.due()
    store.mark_retry(pending.id, "gave up", retry_at=None)
    failed = study_labels([], store.study_submissions("study"))
    assert failed.status is AiStatus.FAILED and failed.labels == ("ai-failed",)
    only_seg = SubmissionStore(tmp_path / "other.sqlite")
    only_seg.record(new(forward=False))
    none = study_labels([], only_seg.study_submissions("study"))
    assert none.status is AiStatus.NONE and none.labels == ()


def submission(state: SubmissionState, *, error: str | None = None) -> Submission:
    forwarding = FORWARDED if state is not SubmissionState.NOT_FORWARDED else "not forwarded: x"
    return Submission(
        1, "s1", "1.2.s1", "study", "1.2.3", "f1", 20, state, forwarding, 1, None, error, 0, 0, None
    )


def test_series_progress_joins_the_submission_and_the_node_decision() -> None:
    sent = submission(SubmissionState.SUBMITTED)
    skip_reason = "ignore (no rule matched): 'portal-venous abdominal CT': 20 slices < 40"
    cases = [
        (submission(SubmissionState.NOT_FORWARDED), None, "not-forwarded", "not forwarded: x"),
        (submission(SubmissionState.PENDING, error="node down"), None, "sending", "node down"),
        (sent, None, "waiting-for-node", None),
        (sent, series(RoutingDecision.PENDING), "waiting-for-node", None),
        (sent, series(RoutingDecision.SKIP, skip_reason), "skipped", skip_reason),
        (
            sent,
            series(RoutingDecision.ANALYZE, "analyze by rule 'x'"),
            "analyse",
            "analyze by rule 'x'",
        ),
        (submission(SubmissionState.FAILED, error="gave up"), None, "failed", "gave up"),
        (submission(SubmissionState.SUPERSEDED), series(), "superseded", None),
    ]
    for sub, node_series, progress, reason in cases:
        assert series_progress(sub, node_series) is SeriesProgress(progress)
        assert progress_reason(sub, node_series) == reason


def test_node_decides_skipped_and_waiting() -> None:
    sent = submission(SubmissionState.SUBMITTED)
    seg = submission(SubmissionState.NOT_FORWARDED)
    skipped = [StudyJobInfo(series(RoutingDecision.SKIP, "too few"), None, None, None)]
    assert study_labels(skipped, [sent, seg]) == StudyLabels(
        AiStatus.SKIPPED, final=True, reason="too few"
    )
    assert study_labels(skipped, [sent, seg]).labels == ("ai-skipped",)
    undecided = [StudyJobInfo(series(RoutingDecision.PENDING), None, None, None)]
    assert study_labels(undecided, [sent, seg]).status is AiStatus.PENDING
    analysed = [StudyJobInfo(series(RoutingDecision.ANALYZE), None, None, None)]
    assert study_labels(analysed, [sent]).status is AiStatus.PENDING  # its job is on its way
    assert study_labels([], [seg]).status is AiStatus.NONE


# -- REST plumbing ---------------------------------------------------------------------------


class Output:
    """Records what a route answered, like ``orthanc.RestOutput`` (orthanc-python 4.0)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def AnswerBuffer(self, answer: str | bytes, mime_type: str) -> None:  # noqa: N802
        self.calls.append(("answer", (answer, mime_type)))

    def SendHttpStatus(self, status: int, body: str, size: int) -> None:  # noqa: N802
        assert isinstance(body, str) and size == len(body.encode())
        self.calls.append(("status", (status, body)))

    def SendMethodNotAllowed(self, allowed: str) -> None:  # noqa: N802
        self.calls.append(("405", (allowed,)))

    def SetHttpHeader(self, key: str, value: str) -> None:  # noqa: N802
        self.calls.append(("header", (key, value)))


def test_send_json_uses_answer_buffer_for_200_only() -> None:
    output = Output()
    send_json(output, 200, {"a": 1})
    send_json(output, 404, {"error": "x"})
    assert output.calls[0][0] == "answer" and json.loads(output.calls[0][1][0]) == {"a": 1}
    assert output.calls[1] == ("header", ("Content-Type", "application/json"))
    assert output.calls[2][0] == "status" and output.calls[2][1][0] == 404


def test_request_user_from_basic_auth() -> None:
    assert Request("GET", "/", headers={"authorization": "Basic YWRtaW46cHc="}).user == "admin"
    assert Request("GET", "/", headers={"authorization": "Basic !!"}).user == "unknown"
    assert Request("GET", "/").user == "anonymous"


def test_plugin_config_is_frozen(tmp_path: Path) -> None:
    config = PluginConfig(state_file=tmp_path / "x")
    with pytest.raises(AttributeError):
        config.submit = False  # type: ignore[misc]


class InMemoryStudyApi:
    """Orthanc's metadata and labels routes of one study, held in memory."""

    def __init__(self) -> None:
        self.metadata: dict[str, str] = {}
        self.labels: set[str] = {"teaching"}

    def get(self, path: str) -> bytes:
        assert path == "/studies/s/labels"
        return json.dumps(sorted(self.labels)).encode()

    def post(self, path: str, body: bytes) -> bytes:
        raise AssertionError(path)

    def put(self, path: str, body: bytes) -> bytes:
        kind, name = path.split("/")[-2:]
        if kind == "metadata":
            self.metadata[name] = body.decode()
        else:
            self.labels.add(name)
        return b""

    def delete(self, path: str) -> None:
        kind, name = path.split("/")[-2:]
        if kind == "metadata":
            if name not in self.metadata:
                raise OrthancCallError(17, "Unknown resource")
            del self.metadata[name]
        else:
            self.labels.discard(name)


def test_labels_as_metadata_and_as_labels_from_1_12() -> None:
    api = InMemoryStudyApi()
    apply_labels(api, "s", StudyLabels(AiStatus.PENDING), use_labels_api=False)
    assert api.metadata == {"PancreasAiStatus": "ai-pending"}
    assert api.labels == {"teaching"}  # Orthanc 1.10: metadata only
    apply_labels(api, "s", StudyLabels(AiStatus.PENDING), use_labels_api=True)
    assert api.labels == {"teaching", "ai-pending"}
    done = StudyLabels(AiStatus.DONE, "nccn-resectable", final=True)
    apply_labels(api, "s", done, use_labels_api=True)
    assert api.metadata == {"PancreasAiStatus": "ai-done", "PancreasAiCategory": "nccn-resectable"}
    assert api.labels == {"teaching", "ai-done", "nccn-resectable"}
    apply_labels(api, "s", StudyLabels(AiStatus.NONE, final=True), use_labels_api=True)
    assert api.metadata == {} and api.labels == {"teaching"}


class RecordingStudyApi(InMemoryStudyApi):
    """The in-memory study that also keeps the metadata as it stood after every write."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, str]] = []

    def put(self, path: str, body: bytes) -> bytes:
        answer = super().put(path, body)
        self.history.append(dict(self.metadata))
        return answer


def test_the_category_is_written_before_the_status() -> None:
    # A reader polling for PancreasAiStatus == ai-done must find the category already there
    # (the CI run of 2026-12-07 read the status between the two writes).
    api = RecordingStudyApi()
    done = StudyLabels(AiStatus.DONE, "nccn-borderline", final=True)
    apply_labels(api, "s", done, use_labels_api=False)
    assert api.history and all(
        "PancreasAiCategory" in m for m in api.history if m.get("PancreasAiStatus") == "ai-done"
    )


def test_a_done_job_without_a_category_is_no_tumor() -> None:
    # result.json outcome no-tumor: the result row has no category (issue 20, item 4).
    for state in (JobState.DONE, JobState.DELIVERED):
        labels = study_labels([StudyJobInfo(series(), job(state), None, None)], [])
        assert labels.status is StudyStatus.NO_TUMOR and labels.final
        assert labels.labels == ("ai-no-tumor",) and labels.category is None
        assert labels.text == "No tumor segmented: staging not possible"
    staged = study_labels([StudyJobInfo(series(), job(JobState.DONE), 2, None)], [])
    withheld = study_labels(
        [StudyJobInfo(series(), job(JobState.DELIVERED), None, None, "out-of-domain")], []
    )
    # result.json outcome out-of-domain: the domain check withheld the category (issue 21).
    assert withheld.status is StudyStatus.OUT_OF_DOMAIN and withheld.final
    assert withheld.labels == ("ai-out-of-domain",) and withheld.category is None
    assert withheld.text == "CT out of the training domain: NCCN category withheld"
    # result.json outcome no-pdac: the PDAC detector gated the staging (issue 23).
    gated = study_labels(
        [StudyJobInfo(series(), job(JobState.DELIVERED), None, None, "no-pdac")], []
    )
    assert gated.status is StudyStatus.NO_PDAC and gated.labels == ("ai-no-pdac",)
    assert gated.text == "No PDAC detected: NCCN staging not given"
    assert staged.status is StudyStatus.DONE


class _FakeOrthanc:
    def __init__(self, venv: Path) -> None:
        self._venv = venv

    def GetConfiguration(self) -> str:  # noqa: N802 (Orthanc's name)
        return json.dumps({"PancreasAI": {"VirtualEnv": str(self._venv)}})


def test_the_venv_comes_after_the_standard_library_and_before_dist_packages(
    tmp_path: Path,
) -> None:
    """A PyPI backport named like a standard module (``dataclasses`` 0.6, which rt-utils pulls
    in) in the venv must not shadow the standard library inside Orthanc's embedded Python."""
    import sys

    from orthanc_plugin import _entry

    packages = tmp_path / "venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (packages / "site-packages").mkdir(parents=True)
    stdlib = ["/usr/lib/python311.zip", "/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload"]
    debian = ["/usr/local/lib/python3.11/dist-packages", "/usr/lib/python3/dist-packages"]
    saved = list(sys.path)
    try:
        sys.path[:] = [*stdlib, *debian]
        _entry._prepare_path(_FakeOrthanc(tmp_path / "venv"))
        arranged = list(sys.path)
    finally:
        sys.path[:] = saved
    venv = str(packages / "site-packages")
    assert arranged == [str(_entry._REPO), *stdlib, venv, *debian]
