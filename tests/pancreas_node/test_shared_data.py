"""Where the suite finds the shared public CT examples, and what it says when they are absent.

Covers :func:`tests.conftest.require_shared_data` (the ``shared_data`` fixture): the folder
comes from ``$PANCREAS_AI_SHARED_DATA`` or defaults to ``../shared/data``; a missing folder
fails in CI and skips elsewhere, naming the folder looked for and the variable to set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import (
    DEFAULT_SHARED_DATA,
    SHARED_DATA_VARIABLE,
    require_shared_data,
    shared_data_dir,
)


def test_the_variable_points_at_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pancreas-ct-0001").mkdir()
    monkeypatch.setenv(SHARED_DATA_VARIABLE, str(tmp_path))
    assert shared_data_dir() == tmp_path
    assert require_shared_data() == tmp_path
    assert require_shared_data("pancreas-ct-0001") == tmp_path / "pancreas-ct-0001"


def test_the_default_is_beside_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARED_DATA_VARIABLE, raising=False)
    assert shared_data_dir() == DEFAULT_SHARED_DATA
    assert DEFAULT_SHARED_DATA.parts[-2:] == ("shared", "data")


def test_missing_data_fails_in_ci_naming_folder_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv(SHARED_DATA_VARIABLE, str(missing))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_shared_data()
    message = str(failed.value)
    assert str(missing) in message and f"${SHARED_DATA_VARIABLE}" in message
    assert "README" not in message  # it would be inside the folder that is missing


def test_missing_default_skips_elsewhere_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SHARED_DATA_VARIABLE, raising=False)
    monkeypatch.delenv("CI", raising=False)
    if (DEFAULT_SHARED_DATA / "no-such-case").is_dir():
        pytest.skip("a case named no-such-case exists")
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_shared_data("no-such-case")
    message = str(skipped.value)
    assert str((DEFAULT_SHARED_DATA / "no-such-case").resolve()) in message
    assert f"set {SHARED_DATA_VARIABLE} to" in message
