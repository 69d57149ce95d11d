"""The task protocol: what the analysis pipeline gives a model and what it takes back.

The pipeline (:class:`inference.analysis.Analyzer`) reads the CT and localises the pancreas
once, then runs every registered task (:data:`inference.tasks.TASKS`) in order on the same
:class:`TaskContext`. A task returns a :class:`TaskOutput`:

- ``result_update``: the fields of :class:`pancreas_contracts.result.AnalysisResult` the task
  owns (the resectability task: ``category``, ``rule_category``, ``disagreement``,
  ``measurements``, ``clinical``); a further task puts its
  :class:`~pancreas_contracts.result.TaskSection` under ``tasks`` (``{"tasks": {name:
  section}}``), whose coded findings and notes become SR content items (one TID 1501 group per
  task) and PDF lines without any change to the writers;
- ``label_map``: its labels on the CT grid, merged into the one DICOM-SEG (a later task's
  non-zero voxels win; labels are those of ``pancreas_contracts.labels``);
- ``warnings`` and ``timings_s``, carried into every output.

A task that cannot analyse this CT raises :class:`AnalysisError` with a named reason; nothing
is then written. Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from inference.volume import Volume
from pancreas_contracts.clinical import ClinicalVariables

if TYPE_CHECKING:
    import torch

    from inference._analysis_localise import LocalisationEstimate
    from inference.bundle import LoadedBundle

__all__ = [
    "AnalysisError",
    "AnalysisTask",
    "TaskContext",
    "TaskFactory",
    "TaskOutput",
    "TaskRegistration",
]


class AnalysisError(ValueError):
    """An input the pipeline cannot analyse; ``reason`` names why (no patient data in it).

    Reasons: ``unreadable-series``, ``not-ct``, ``not-localised``, ``outside-scan``,
    ``non-finite``, ``no-pancreas``, ``pancreas-cut``, ``unwritable-output``, and those a task
    adds (documented in its folder).

    ``details`` holds what the checks measured, by name (e.g. ``confidence``,
    ``disagreement_mm``), numbers or short words only; :meth:`details_text` renders them for
    the job's reason and the refusal document.
    """

    def __init__(
        self, reason: str, message: str, *, details: Mapping[str, float | str] | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.details: Mapping[str, float | str] = dict(details or {})

    def details_text(self) -> str:
        """The measured details as ``name value`` pairs (``""`` when there are none)."""
        return ", ".join(f"{k} {_number(v)}" for k, v in self.details.items())


def _number(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}"


@dataclass(frozen=True)
class TaskContext:
    """What every task receives for one CT.

    Attributes
    ----------
    image
        The CT in HU on its own grid (world coordinates RAS+ mm, see :class:`Volume`).
    clinical
        The patient's clinical variables, or ``None`` (imaging only).
    registry_status
        How the registry lookup went (``ok``, ``not_found``, ``unreachable``, ...).
    localisation
        The coarse pancreas localisation the pipeline found (always ``found``).
    tta_flips
        Whether tasks that support it add test-time flip passes (settings ``tta_flips``).
    on_label_map
        Called once with the task's label map as soon as it is final, before the task measures
        it, by tasks that make one; the pipeline may start writing its SEG then (in another
        process: the task must not change the map afterwards). ``None``: nobody asks.
    """

    image: Volume
    clinical: ClinicalVariables | None
    registry_status: str
    localisation: LocalisationEstimate
    tta_flips: bool = False
    on_label_map: Callable[[Volume], None] | None = None


@dataclass(frozen=True)
class TaskOutput:
    """What one task contributes to the result and the outputs (see the module docstring)."""

    result_update: Mapping[str, Any]
    label_map: Volume | None = None
    warnings: tuple[str, ...] = ()
    timings_s: Mapping[str, float] = field(default_factory=dict)


class AnalysisTask(Protocol):
    """One model of the node, built once per bundle and run once per CT."""

    @property
    def name(self) -> str:
        """The task's name (its folder under ``inference/tasks/``)."""
        ...

    def run(self, context: TaskContext) -> TaskOutput:
        """Analyse one CT.

        Raises
        ------
        AnalysisError
            When this CT cannot be analysed by the task (a named reason).
        """
        ...


#: Builds a task from the loaded bundle and the torch device (called once per Analyzer).
TaskFactory = Callable[["LoadedBundle", "torch.device"], AnalysisTask]


@dataclass(frozen=True)
class TaskRegistration:
    """A task's entry in :data:`inference.tasks.TASKS`.

    Attributes
    ----------
    name
        The task's name (unique).
    build
        Its factory; it imports the task's network (and torch) only when called.
    """

    name: str
    build: TaskFactory
