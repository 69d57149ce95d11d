"""Analysis tasks: one folder per model, run by the pipeline through one small protocol."""

__all__: list[str] = []
