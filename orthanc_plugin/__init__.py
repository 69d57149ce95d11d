"""orthanc_plugin room: Orthanc as the node's PACS face.

Holds the Orthanc launcher used by the demo and tests (:mod:`orthanc_plugin.server`) and the
Python plugin that ``orthanc-python`` loads inside Orthanc (:mod:`orthanc_plugin.plugin`,
started by ``orthanc_plugin/_entry.py``). Never imports torch.
"""

from orthanc_plugin.server import (
    ORTHANC_BINARY,
    PYTHON_PLUGIN,
    OrthancConfig,
    OrthancError,
    OrthancServer,
    PythonPluginConfig,
)

__all__ = [
    "ORTHANC_BINARY",
    "PYTHON_PLUGIN",
    "OrthancConfig",
    "OrthancError",
    "OrthancServer",
    "PythonPluginConfig",
]
