"""Inference room: volume I/O, phantoms, preprocessing, model, training, analysis, writers.

Importing this package is cheap: torch and MONAI are imported only by the modules that need
them (model, training, analysis), never at package import.
"""

from inference.volume import LPS_TO_RAS, Volume, read_nifti, to_canonical, write_nifti

__all__ = ["LPS_TO_RAS", "Volume", "read_nifti", "to_canonical", "write_nifti"]
