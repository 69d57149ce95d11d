"""The training room: cohorts, cross-validation, losses, ablations, evaluation and bundles.

Reads cohort folders (:mod:`training.dataset`), trains the resectability network with nested
cross-validation (:func:`training.cohort.train_cohort`), evaluates a bundle on a cohort
(:func:`training.evaluation.evaluate_cohort`) and trains the coarse localiser
(:func:`training.localiser.train_bundle_localiser`). It uses the runtime (``inference``) only
through its public modules, so what is trained is exactly what runs; no runtime room imports
this package. Torch and MONAI are imported by the modules that need them.
"""

__all__: list[str] = []
