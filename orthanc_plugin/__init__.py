"""orthanc_plugin room."""

__all__: list[str] = []
