"""A tiny real bundle for tests and benchmarks (untrained: its predictions mean nothing).

It is a real bundle (saved by :func:`inference.bundle.save_bundle`, loaded and verified like
any other) so the analysis pipeline, the worker and the benchmarks can run from a fresh clone
without trained weights. Two feature-size-12 members on a 64-voxel cube (2.5 mm). Their segmentation
output layer is set so that the whole cube reads as one label (``pancreas`` by default), which makes
the pipeline's
structure testable without training: assert structure, never accuracy.
"""

from __future__ import annotations

from pathlib import Path

import torch

from inference.bundle import BundleMember, save_bundle
from inference.clinical_preprocessing import ClinicalPreprocessor, clinical_matrix
from inference.preprocessing import PreprocessConfig
from inference.tasks.resectability.model import ModelConfig, ResectabilityNet
from pancreas_contracts.labels import label_by_name
from phantom import plan_cohort

__all__ = ["build_test_bundle"]


def build_test_bundle(out: Path, *, fill_label: str = "pancreas", members: int = 2) -> Path:
    """Write the bundle under ``out`` and return its directory.

    Parameters
    ----------
    out
        Bundle directory (created).
    fill_label
        The label the whole cube is segmented as (a name from ``pancreas_contracts.labels``).
    members
        Number of ensemble members.
    """
    raw = clinical_matrix([p.clinical for p in plan_cohort(12, seed=4)])
    built = []
    for seed in range(members):
        torch.manual_seed(seed)
        pre = ClinicalPreprocessor().fit(raw)
        net = ResectabilityNet(ModelConfig(clinical_features=pre.n_features, feature_size=12))
        net.store_clinical_mean(torch.from_numpy(pre.transform(raw).features))
        assert net.swin is not None
        conv = net.swin.out.conv.conv
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            conv.bias[label_by_name(fill_label).value] = 5.0
        built.append(BundleMember(net, pre))
    save_bundle(
        out, built, preprocess=PreprocessConfig(64), name="pancreas-ai-test", version="0.0.1",
        data_hash="0" * 64, metrics={},
    )  # fmt: skip
    return out
