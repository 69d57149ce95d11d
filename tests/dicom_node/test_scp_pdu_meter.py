"""The PDU meter on the SCP's sockets (issue 22, D5): PS3.8 9.3.1 / 9.3.5 framing, any split."""

from __future__ import annotations

import struct

import pytest

from dicom_node._pdu_meter import MeterLimits, PduLimitError, PduMeter


def pdv(data: bytes, *, command: bool = False, last: bool = True) -> bytes:
    """One Presentation Data Value item (PS3.8 9.3.5.1, E.2 message control header)."""
    control = (0x01 if command else 0x00) | (0x02 if last else 0x00)
    return struct.pack(">IBB", len(data) + 2, 1, control) + data


def p_data(*items: bytes) -> bytes:
    body = b"".join(items)
    return struct.pack(">BBI", 0x04, 0, len(body)) + body


def feed(meter: PduMeter, stream: bytes, step: int) -> None:
    for start in range(0, len(stream), step):
        meter.feed(stream[start : start + step])


@pytest.mark.parametrize("step", [1, 5, 7, 4096])
def test_messages_under_the_limit_pass_and_each_message_counts_alone(step: int) -> None:
    reasons: list[str] = []
    meter = PduMeter(MeterLimits(max_pdu_bytes=4096, max_dataset_bytes=1000), reasons.append)
    # Two messages of 600 data bytes each (in two fragments): 1200 in all, never 1000 at once.
    message = p_data(pdv(b"c" * 40, command=True)) + p_data(pdv(b"d" * 300, last=False))
    message += p_data(pdv(b"d" * 300))
    feed(meter, message + message, step)
    assert reasons == []


@pytest.mark.parametrize("step", [1, 3, 4096])
def test_a_data_set_past_the_limit_fails_while_it_arrives(step: int) -> None:
    reasons: list[str] = []
    meter = PduMeter(MeterLimits(max_pdu_bytes=4096, max_dataset_bytes=1000), reasons.append)
    stream = b"".join(p_data(pdv(b"d" * 400, last=False)) for _ in range(3))
    with pytest.raises(PduLimitError):
        feed(meter, stream, step)
    assert reasons == ["instance-too-large"]


def test_a_pdu_longer_than_announced_fails_at_its_header() -> None:
    reasons: list[str] = []
    meter = PduMeter(MeterLimits(max_pdu_bytes=4096, max_dataset_bytes=1 << 30), reasons.append)
    with pytest.raises(PduLimitError):
        meter.feed(struct.pack(">BBI", 0x04, 0, 8192))
    assert reasons == ["pdu-too-large"]
    control = PduMeter(MeterLimits(4096, 1 << 30), reasons.append)
    with pytest.raises(PduLimitError):  # an A-ASSOCIATE-RQ announcing 4 GiB
        control.feed(struct.pack(">BBI", 0x01, 0, 0xFFFFFFFF))
