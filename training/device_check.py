"""Check the training batches on a GPU: augmented batches stay on the device; time them.

Run on the GPU machine (``python3 -m training.device_check [cuda|cpu] [SIZE]``) before a
training run:
it builds 16 random 96^3 cubes, draws 20 augmented batches of 4 and one optimiser step of
the demo model, and prints the median times. Random data: a smoke check, not a benchmark.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from inference.tasks.resectability.model import ModelConfig, ResectabilityNet
from training._loop import CohortArrays, _Batches
from training.dataset import make_augmentation


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def _median_seconds(step: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    device = torch.device(sys.argv[1] if len(sys.argv) > 1 else "cuda")
    rng = np.random.default_rng(0)
    n, size = 16, int(sys.argv[2]) if len(sys.argv) > 2 else 96
    arrays = CohortArrays(
        images=rng.normal(size=(n, size, size, size)).astype(np.float32),
        labels=rng.integers(0, 16, size=(n, size, size, size), dtype=np.uint8),
        clinical=np.zeros((n, 17)),
        targets=np.zeros(n, dtype=np.int64),
        patient_ids=tuple(str(i) for i in range(n)),
    )
    idx = np.arange(4)
    plain, augmented = (
        _Batches(arrays, None, device),
        _Batches(arrays, make_augmentation(0), device),
    )
    image, label = augmented(idx)
    _say(f"augmented batch on {image.device} / {label.device}, {tuple(image.shape)} {label.dtype}")
    _say(f"plain batch median {_median_seconds(lambda: plain(idx), 20) * 1e3:.1f} ms")
    _say(f"augmented batch median {_median_seconds(lambda: augmented(idx), 20) * 1e3:.1f} ms")
    model = ResectabilityNet(ModelConfig(clinical_features=17, feature_size=24)).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    clinical = torch.zeros((4, 17), device=device)

    def step() -> None:
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            out = model(image, clinical)
            assert out.seg_logits is not None
            loss = out.seg_logits.float().mean() + out.class_logits.float().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    step()
    seconds = _median_seconds(step, 10 if device.type == "cuda" else 1)
    _say(f"training step (batch 4, fs24, {size}^3) median {seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
