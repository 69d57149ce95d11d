"""The command-line room: every ``pancreas-node`` command, the demo and the Orthanc launcher.

This is the only package that may import all the others (import-linter's contracts in
``pyproject.toml`` say so and ``make test`` enforces them). It holds wiring, not logic: each
command builds the one :class:`pancreas_contracts.Settings` object in ``main()`` and hands it
to the room that does the work. Commands that do not analyse (``--help``, ``status``,
``serve`` without a bundle) never import torch.
"""

__all__: list[str] = []
