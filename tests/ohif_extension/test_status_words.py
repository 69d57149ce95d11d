"""The OHIF extension's status words and texts are pancreas_contracts.status's, one for one."""

from __future__ import annotations

import re
from pathlib import Path

from pancreas_contracts.status import STATUS_TEXT, StudyStatus

_VIEW_MODEL = Path(__file__).parents[2] / "ohif-extension" / "src" / "viewModel.ts"


def test_viewer_status_words_match_the_contract() -> None:
    source = _VIEW_MODEL.read_text(encoding="utf-8")
    words = re.search(r"STATUS_WORDS = \[([^\]]*)\] as const", source)
    assert words is not None
    assert re.findall(r'"([^"]+)"', words[1]) == [s.value for s in StudyStatus]
    block = re.search(r"STATUS_TEXT: [^=]*= \{(.*?)\};", source, re.S)
    assert block is not None
    texts = dict(re.findall(r'"?([\w-]+)"?: "([^"]*)"', block[1]))
    assert texts == {s.value: STATUS_TEXT[s] for s in StudyStatus}
