"""db room."""

__all__: list[str] = []
