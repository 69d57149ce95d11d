"""Analysis tasks: one folder per model, run by the pipeline through one small protocol.

The protocol is :mod:`inference.tasks.protocol`: a task is built once per bundle
(:class:`~inference.tasks.protocol.TaskRegistration`) and run once per CT on a
:class:`~inference.tasks.protocol.TaskContext`, returning a
:class:`~inference.tasks.protocol.TaskOutput` (its result fields or section, its label map, its
warnings and timings). :data:`TASKS` is the registry, in run order. Adding a model is one new
folder here plus one line in :data:`TASKS` (see ``docs/tasks.md``).
"""

from __future__ import annotations

from inference.tasks import resectability
from inference.tasks.protocol import (
    AnalysisError,
    AnalysisTask,
    TaskContext,
    TaskFactory,
    TaskOutput,
    TaskRegistration,
)

__all__ = [
    "TASKS",
    "AnalysisError",
    "AnalysisTask",
    "TaskContext",
    "TaskFactory",
    "TaskOutput",
    "TaskRegistration",
]

#: The registered tasks, in the order the pipeline runs them (immutable).
TASKS: tuple[TaskRegistration, ...] = (
    TaskRegistration(resectability.NAME, resectability.build_task),
)
