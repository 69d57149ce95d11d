"""The fast subset of ``make bench-robustness`` (issue 22, item 6): kill -9 during analysis and
during delivery, fuzzed instances, malformed PDU streams, half-open connections while
``storescu`` stores a series, and concurrent bombs, against a real node and real DCMTK peers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.robustness_bench import FAST, report, run_campaign
from tests.conftest import require_executable

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_fast_campaign_loses_nothing_and_the_node_stays_up(tmp_path: Path) -> None:
    for tool in ("storescp", "storescu"):
        require_executable(tool)
    campaign = run_campaign(tmp_path, FAST)
    text = report(campaign, 0.0)
    assert campaign.kills is not None and campaign.kills.passed, text
    for section in campaign.sections:
        assert not section.crashed, f"{section.name}: node crashed\n{text}"
        assert section.echo_missed == 0, f"{section.name}: C-ECHO missed\n{text}"
    assert campaign.storescu_ok, text
    assert campaign.memory["growth_mb"] <= campaign.memory["limit_mb"], text
    assert campaign.passed, text
