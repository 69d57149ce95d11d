"""The JPS station rules on a hand-made anatomy."""

from __future__ import annotations

import numpy as np

from inference.tasks.lymph_nodes.stations import StationAnatomy, anatomy_of, assign_station
from inference.volume import Volume
from pancreas_contracts.lymph_nodes import ATTENTION_STRUCTURES, structure_by_name

_ANATOMY = StationAnatomy(
    centroids={
        "aorta": (0.0, 0.0, 0.0), "sma": (0.0, 10.0, -20.0), "spleen": (-90.0, 0.0, 20.0),
        "pancreas": (-10.0, 10.0, -10.0), "celiac_splenic": (-40.0, 5.0, 10.0),
    },
    tops={"aorta": 100.0, "sma": -5.0, "spleen": 60.0, "pancreas": 10.0},
    head_centroid=(20.0, 10.0, -15.0),
)  # fmt: skip
_FAR = float("inf")


def _distances(nearest: str) -> dict[str, float]:
    return {s.name: (2.0 if s.name == nearest else 30.0) for s in ATTENTION_STRUCTURES}


def test_nearest_structure_and_its_split() -> None:
    assert assign_station((5.0, 0.0, 10.0), _distances("aorta"), _ANATOMY) == ("16a2", "aorta")
    assert assign_station((5.0, 0.0, -30.0), _distances("aorta"), _ANATOMY) == ("16b1", "aorta")
    assert assign_station((-80.0, 0.0, 0.0), _distances("spleen"), _ANATOMY) == ("10", "spleen")
    assert assign_station((-20.0, 0, 0), _distances("pancreas"), _ANATOMY)[0] == "18"  # type: ignore[index]
    head = assign_station((25.0, 0.0, -10.0), _distances("pancreas"), _ANATOMY)
    assert head == ("13a", "pancreas")  # posterior of the head, above its centroid
    assert assign_station((25.0, 20.0, -20.0), _distances("pancreas"), _ANATOMY)[0] == "17b"  # type: ignore[index]
    celiac = [assign_station((x, 0.0, 0.0), _distances("celiac_splenic"), _ANATOMY)
              for x in (-10.0, -45.0, -80.0)]  # fmt: skip
    assert [c[0] for c in celiac if c] == ["9", "11p", "11d"]


def test_inside_a_structure_wins_and_nothing_found_gives_none() -> None:
    distances = _distances("aorta")
    distances["sma"] = -1.0
    assert assign_station((0.0, 0.0, 0.0), distances, _ANATOMY) == ("14p", "sma")
    assert assign_station((0.0, 0.0, 0.0), {s.name: _FAR for s in ATTENTION_STRUCTURES},
                          _ANATOMY) is None  # fmt: skip


def test_anatomy_of_a_label_map() -> None:
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[2:4, 2:4, 2:8] = structure_by_name("aorta").value
    anatomy = anatomy_of(Volume(labels, np.diag([2.0, 2.0, 2.0, 1.0])))
    assert set(anatomy.centroids) == {"aorta"} and anatomy.head_centroid is None
    assert anatomy.centroids["aorta"] == (5.0, 5.0, 9.0) and anatomy.tops["aorta"] == 14.0
