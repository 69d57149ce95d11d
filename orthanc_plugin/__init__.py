"""orthanc_plugin room: Orthanc as the node's PACS face.

Holds the Orthanc launcher used by the demo and tests (:mod:`orthanc_plugin.server`) and,
from issue 7, the Python plugin loaded by ``orthanc-python``. Never imports torch.
"""

from orthanc_plugin.server import ORTHANC_BINARY, OrthancConfig, OrthancError, OrthancServer

__all__ = ["ORTHANC_BINARY", "OrthancConfig", "OrthancError", "OrthancServer"]
