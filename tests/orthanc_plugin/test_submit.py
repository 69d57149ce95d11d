"""The submitter against an in-memory Orthanc: it forwards CT series and never routes.

:class:`FakeOrthanc` answers the few REST calls the submitter makes and fails the test on any
read of an instance other than its ``RemoteAET`` metadata: the plugin forwards a stable series
from the series' resource (its main tags and instance list) and the AE title that sent it to
Orthanc; the node's series assembly reads the instances and routes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orthanc_plugin._config import PluginConfig
from orthanc_plugin._orthanc_api import OrthancCallError
from orthanc_plugin._store import SubmissionState, SubmissionStore
from orthanc_plugin._submit import (
    FORWARDED,
    MOVE_ORIGINATOR_ID,
    Submitter,
    fingerprint,
    scanner_ae_title,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeOrthanc:
    """Orthanc's index of a few series and its C-STORE SCU, in memory.

    Any read below ``/instances/`` other than ``/instances/<id>/metadata/RemoteAET`` fails the
    test: forwarding a series needs the series' resource (main tags and instance list) and the
    AE title that sent one of its instances to Orthanc, never an instance's file or tags.
    """

    def __init__(self) -> None:
        self.series: dict[str, dict[str, Any]] = {}
        self.remote_aet: dict[str, bytes] = {}  # instance -> RemoteAET (absent: REST upload)
        self.metadata_reads: list[str] = []
        self.stored: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.refused = 0  # FailedInstancesCount the node's C-STORE answers
        self.node_down = False

    def add(
        self, series_id: str, modality: str, instances: int = 3, remote_aet: bytes | None = None
    ) -> None:
        ids = [f"{series_id}-i{n}" for n in range(instances)]
        self.series[series_id] = {
            "ParentStudy": "study",
            "MainDicomTags": {"SeriesInstanceUID": "1.2." + series_id, "Modality": modality},
            "Instances": ids,
        }
        if remote_aet is not None:
            self.remote_aet.update(dict.fromkeys(ids, remote_aet))

    def get(self, path: str) -> bytes:
        if path.startswith("/instances/"):
            instance, _, rest = path.removeprefix("/instances/").partition("/")
            if rest != "metadata/RemoteAET" or not instance:
                pytest.fail(f"the plugin read {path}: forwarding must not download instances")
            self.metadata_reads.append(instance)
            if instance not in self.remote_aet:
                raise OrthancCallError(17, "Unknown resource")
            return self.remote_aet[instance]
        if path == "/studies/study":
            return json.dumps({"MainDicomTags": {"StudyInstanceUID": "1.2.3"}}).encode()
        kind, _, ident = path.strip("/").partition("/")
        if kind == "series" and ident in self.series:
            return json.dumps(self.series[ident]).encode()
        raise OrthancCallError(17, "Unknown resource")

    def post(self, path: str, body: bytes) -> bytes:
        assert path == "/modalities/pancreas_ai/store", path
        request = json.loads(body)
        assert request["Synchronous"] is True
        self.requests.append(request)
        if self.node_down:
            raise OrthancCallError(9, "Error in the network protocol")
        self.stored.extend(request["Resources"])
        return json.dumps({"FailedInstancesCount": self.refused}).encode()

    def put(self, path: str, body: bytes) -> bytes:
        raise AssertionError(f"the submitter wrote {path}")

    def delete(self, path: str) -> None:
        raise AssertionError(f"the submitter deleted {path}")


def submitter(tmp_path: Path, clock: Clock) -> tuple[Submitter, FakeOrthanc, SubmissionStore]:
    api = FakeOrthanc()
    store = SubmissionStore(tmp_path / "plugin.sqlite", clock)
    config = PluginConfig(state_file=store.path, retry_base_s=10, retry_max_s=40, give_up_h=1)
    return Submitter(api, store, config, clock), api, store


def test_stable_ct_series_is_forwarded_without_reading_instances(tmp_path: Path) -> None:
    sender, api, store = submitter(tmp_path, Clock())
    api.add("ct", "CT", instances=5)
    recorded = sender.on_stable_series("ct")
    assert recorded is not None and recorded.state is SubmissionState.PENDING
    assert recorded.forwarding == FORWARDED and recorded.instance_count == 5
    assert recorded.fingerprint == fingerprint(api.series["ct"]["Instances"])
    assert [s.id for s in sender.send_due()] == [recorded.id]
    assert api.stored == ["ct"]
    (sent,) = store.study_submissions("study")
    assert sent.state is SubmissionState.SUBMITTED and sent.attempts == 1
    # The same instances again: recorded once, sent once.
    assert sender.on_stable_series("ct") is None
    assert sender.send_due() == [] and api.stored == ["ct"]
    # A late instance: a new fingerprint, forwarded again (the node versions the series).
    api.series["ct"]["Instances"].append("ct-late")
    again = sender.on_stable_series("ct")
    assert again is not None and again.instance_count == 6
    sender.send_due()
    assert api.stored == ["ct", "ct"]


@pytest.mark.parametrize("modality", ["SEG", "SR", "DOC", ""])
def test_non_ct_series_is_recorded_as_not_forwarded(tmp_path: Path, modality: str) -> None:
    sender, api, store = submitter(tmp_path, Clock())
    api.add("out", modality)
    recorded = sender.on_stable_series("out")
    assert recorded is not None and recorded.state is SubmissionState.NOT_FORWARDED
    shown = modality or "missing"
    assert recorded.forwarding == f"not forwarded: modality {shown}: the node analyses CT only"
    assert sender.send_due() == [] and api.stored == []
    assert sender.on_stable_series("out") is None  # recorded once
    assert store.counts()["not-forwarded"] == 1
    assert store.resubmit_study("study") == 0  # re-analysis never sends it either


def test_send_backs_off_then_gives_up(tmp_path: Path) -> None:
    clock = Clock()
    sender, api, store = submitter(tmp_path, clock)
    api.add("ct", "CT")
    api.node_down = True
    recorded = sender.on_stable_series("ct")
    assert recorded is not None
    sender.send_due()
    (row,) = store.study_submissions("study")
    assert row.state is SubmissionState.PENDING and row.next_attempt_at == clock.now + 10
    assert row.last_error is not None and "C-STORE to the node failed" in row.last_error
    clock.now += 10
    api.node_down, api.refused = False, 2
    sender.send_due()
    (row,) = store.study_submissions("study")
    assert row.attempts == 2 and row.next_attempt_at == clock.now + 20
    assert row.last_error == "the node refused 2 instance(s)"
    clock.now += 3600
    sender.send_due()
    (row,) = store.study_submissions("study")
    assert row.state is SubmissionState.FAILED and row.next_attempt_at is None
    assert api.stored == ["ct", "ct"]  # the two sends the node refused; none once given up
    clock.now += 3600
    assert sender.send_due() == []


def test_deleted_series_is_neither_recorded_nor_sent(tmp_path: Path) -> None:
    sender, api, store = submitter(tmp_path, Clock())
    assert sender.on_stable_series("gone") is None
    api.add("ct", "CT")
    assert sender.on_stable_series("ct") is not None
    del api.series["ct"]

    def missing(path: str, body: bytes) -> bytes:
        raise OrthancCallError(17, "Unknown resource")

    api.post = missing  # type: ignore[method-assign]
    sender.send_due()
    (row,) = store.study_submissions("study")
    assert row.state is SubmissionState.FAILED and row.last_error == "deleted from Orthanc"


def test_scanner_ae_title_travels_as_move_originator(tmp_path: Path) -> None:
    sender, api, _ = submitter(tmp_path, Clock())
    api.add("ct", "CT", instances=4, remote_aet=b"SCANNER_A")
    assert sender.on_stable_series("ct") is not None
    sender.send_due()
    (request,) = api.requests
    assert request == {
        "Resources": ["ct"],
        "Synchronous": True,
        "MoveOriginatorAet": "SCANNER_A",
        "MoveOriginatorID": MOVE_ORIGINATOR_ID,
    }
    assert MOVE_ORIGINATOR_ID != 0  # Orthanc ignores the originator when the ID is 0
    assert api.metadata_reads == ["ct-i0"]  # one instance's metadata, nothing else


@pytest.mark.parametrize(
    "remote_aet",
    [None, b"", b"   ", b"A" * 17, b"BAD\\AE", b"CT\x01", "SCANNER_\u00c4".encode()],
    ids=["rest-upload", "empty", "blank", "too-long", "backslash", "control", "non-ascii"],
)
def test_no_move_originator_without_a_valid_remote_aet(
    tmp_path: Path, remote_aet: bytes | None
) -> None:
    sender, api, store = submitter(tmp_path, Clock())
    api.add("ct", "CT", remote_aet=remote_aet)
    assert sender.on_stable_series("ct") is not None
    sender.send_due()
    (request,) = api.requests
    assert request == {"Resources": ["ct"], "Synchronous": True}
    (sent,) = store.study_submissions("study")
    assert sent.state is SubmissionState.SUBMITTED


def test_remote_aet_padding_is_stripped(tmp_path: Path) -> None:
    api = FakeOrthanc()
    api.add("ct", "CT", remote_aet=b" SCANNER_A  ")
    assert scanner_ae_title(api, "ct") == "SCANNER_A"
    api.add("empty", "CT", instances=0)
    assert scanner_ae_title(api, "empty") is None
    assert api.metadata_reads == ["ct-i0"]


@pytest.mark.parametrize(
    "path", ["/instances/ct-i0/file", "/instances/ct-i0", "/instances/ct-i0/metadata/Origin"]
)
def test_fake_orthanc_fails_on_instance_reads(path: str) -> None:
    api = FakeOrthanc()
    api.add("ct", "CT", remote_aet=b"SCANNER_A")
    with pytest.raises(pytest.fail.Exception, match="must not download instances"):
        api.get(path)
