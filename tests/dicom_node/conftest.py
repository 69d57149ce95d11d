"""Fixtures for the dicom_node tests: a small phantom CT series and a running node."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread

from db import NodeDatabase
from dicom_node.node import Node
from pancreas_contracts import Settings, load_settings
from phantom import PhantomOptions, generate_cohort
from tests.conftest import free_port

#: Rules for the small test series: no contrast check, few slices allowed.
TEST_RULES = """
default_action = "ignore"
[[rules]]
name = "small CT"
action = "analyze"
[rules.when]
modality = ["CT"]
min_slices = 10
max_slice_thickness_mm = 5.0
"""


@dataclass(frozen=True)
class PhantomSeries:
    """One phantom CT series on disk."""

    folder: Path
    files: tuple[Path, ...]
    StudyInstanceUID: str
    SeriesInstanceUID: str
    SOPInstanceUIDs: frozenset[str]


def make_series(out: Path, seed: int, **options: object) -> PhantomSeries:
    """Generate one small phantom patient and describe its DICOM series."""
    defaults: dict[str, object] = {
        "fov_mm": (120.0, 120.0, 60.0),
        "pixel_spacing": 0.9,
        "slice_thickness": 3.0,
    }
    defaults.update(options)
    generate_cohort(out, 1, seed, PhantomOptions(**defaults))  # type: ignore[arg-type]
    folder = next(out.glob("*/dicom"))
    files = tuple(sorted(folder.glob("*.dcm")))
    first = dcmread(files[0], stop_before_pixels=True)
    uids = frozenset(str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files)
    return PhantomSeries(
        folder, files, str(first.StudyInstanceUID), str(first.SeriesInstanceUID), uids
    )


@pytest.fixture(scope="session")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> PhantomSeries:
    """A 20-slice phantom CT series (explicit VR little endian)."""
    return make_series(tmp_path_factory.mktemp("phantom"), seed=11)


def node_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a node on a free loopback port with the test rules."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rules = tmp_path / "rules.toml"
    rules.write_text(TEST_RULES)
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "port": free_port(),
        "quiet_period_s": 0.5,
        "routing_rules": rules,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A running node (SCP + series assembly) with an SQLite database."""
    with Node(node_settings(tmp_path)) as running:
        yield running


@pytest.fixture
def node_db(tmp_path: Path) -> Iterator[NodeDatabase]:
    """A migrated SQLite node database."""
    database = NodeDatabase(f"sqlite:///{tmp_path / 'node.db'}")
    database.upgrade()
    yield database
    database.dispose()


def instance_count(database: NodeDatabase, series_uid: str) -> int:
    """How many instances of ``series_uid`` the node recorded."""
    from db import get_series

    info = get_series(database, series_uid)
    return 0 if info is None else info.instance_count
