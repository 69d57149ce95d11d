"""Logit-sum fusion: fit the clinical expert alone, then its weight on the validation rows.

With ``fusion = "logit_sum"`` (:class:`inference.tasks.resectability.model.FusionMode`) a multimodal
fit has three stages. The image expert (image vector -> fusion head) trains as any fit does, its
clinical
weight held at 0. Then the clinical expert (clinical MLP -> linear head) trains on the same
``train`` rows from the clinical vectors alone, for the run's ``max_epochs`` with AdamW, weight
decay and cosine annealing, and without early stopping: an expert selected on the ``val``
rows would look better there than it is, and its weight, fitted on the same rows, would be
too large (on the demo cohort such experts got weights of 2 and cost the fresh patients 0.03
AUC). Last, the one weight that scales the centred clinical logits is chosen on the ``val``
rows, which neither expert has seen: stacked generalisation (Wolpert, Neural Networks 5,
1992) with a single level-1 parameter, so a hundred-row cohort cannot overfit it, and a weight
of 0 returns the image expert unchanged.

Why: a head trained on the concatenated vector over an image branch that was itself trained on
the ``train`` rows sees image features that separate those rows almost perfectly; nothing in
the loss then constrains what it does with the clinical vector, and on the demo cohort the
fused model fell below CT only on fresh patients while its knock-out did not.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import torch

from inference.tasks.resectability.model import ResectabilityNet
from training.config import HyperParams, TrainConfig
from training.losses import ClassificationLoss

__all__ = ["WEIGHT_GRID", "fit_clinical_expert", "image_expert_params"]

_LOG = logging.getLogger(__name__)

WEIGHT_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(41))
"""Candidate clinical weights, 0 to 2 (a weight above 1 trusts the expert beyond its own fit)."""

IntArray = npt.NDArray[np.int64]


def _is_clinical_param(name: str) -> bool:
    return name.startswith(("clinical_mlp.", "clinical_head."))


def image_expert_params(model: ResectabilityNet) -> list[torch.nn.Parameter]:
    """The trainable parameters of a fit's first stage.

    All of them, except that a logit-sum model's clinical expert waits for its own stage.
    """
    expert = model.clinical_head is not None
    return [
        p for n, p in model.named_parameters()
        if p.requires_grad and not (expert and _is_clinical_param(n))
    ]  # fmt: skip


def fit_clinical_expert(
    model: ResectabilityNet,
    features: torch.Tensor,
    targets: torch.Tensor,
    split: tuple[IntArray, IntArray],
    image_logits_val: torch.Tensor,
    hp: HyperParams,
    config: TrainConfig,
    seed: int,
) -> tuple[float, torch.Tensor]:
    """Train ``model``'s clinical expert in place, store the mean embedding, fit its weight.

    Parameters
    ----------
    model
        A logit-sum multimodal model whose image expert is trained; on the device of
        ``features``.
    features, targets
        Preprocessed clinical vectors and NCCN labels of the whole cohort.
    split
        ``(train, val)`` rows.
    image_logits_val
        ``(len(val), 3)`` logits (or log-probabilities) of the image expert on ``val``.
    hp, config
        The grid point (``lr``, ``batch_size``) and the run's settings (weight decay, class
        weights, ``max_epochs``), as for the image expert; no early stopping (module docstring).
    seed
        Random seed.

    Returns
    -------
    tuple
        The chosen clinical weight (also stored in ``model.clinical_weight``) and the
        ``(len(val), 3)`` summed logits of ``val`` at that weight, the model's own output
        there, so a caller scores the validation rows without another pass.

    Raises
    ------
    ValueError
        If the model has no clinical expert.
    """
    if model.clinical_head is None or model.clinical_mlp is None:
        raise ValueError("fit_clinical_expert needs a model with fusion='logit_sum'")
    train, val = split
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for n, p in model.named_parameters() if _is_clinical_param(n)]
    optimiser = torch.optim.AdamW(params, lr=hp.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.max_epochs)
    loss_fn = ClassificationLoss(config.class_weights).to(features.device)
    for _ in range(config.max_epochs):
        model.train()
        order = rng.permutation(train)
        for start in range(0, len(order), hp.batch_size):
            chunk = torch.from_numpy(order[start : start + hp.batch_size]).to(features.device)
            if len(chunk) < 2:
                continue  # as in the other fits: a one-case batch is noisy
            loss = loss_fn(model.clinical_expert_logits(features[chunk]), targets[chunk])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        scheduler.step()
    model.store_clinical_mean(features[train])
    weight, summed = _fit_weight(model, features[val], targets[val], image_logits_val, loss_fn)
    _LOG.info("clinical expert: %d epochs, weight %.2f", config.max_epochs, weight)
    return weight, summed


def _fit_weight(
    model: ResectabilityNet,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    image_logits_val: torch.Tensor,
    loss_fn: ClassificationLoss,
) -> tuple[float, torch.Tensor]:
    """The grid weight with the lowest validation cross-entropy, and the summed logits there."""
    model.eval()
    with torch.no_grad():
        clinical = model.centred_clinical_logits(model.embed_clinical(x_val))
        image = image_logits_val.to(clinical.device).float()
        losses = [float(loss_fn(image + w * clinical, y_val)) for w in WEIGHT_GRID]
    # The smallest weight among equal losses: no clinical evidence without a gain.
    weight = WEIGHT_GRID[int(np.argmin(losses))]
    model.clinical_weight.fill_(weight)
    return weight, image + weight * clinical
