"""NCCN resectability: the multimodal Swin-UNETR, its post-processing and its measurements."""

__all__: list[str] = []
