"""Add (or replace) the ``domain`` section of a bundle, measured on a sample of its cohort.

The section (:mod:`inference.domain`, schema in ``docs/tasks.md``) holds the training CTs' HU
percentiles and band fractions inside the analysis cube, the reference structures' volumes, the
SMA-SMV position and the voxel spacing. Only ``bundle.json`` is rewritten; the weight files and
their sha256 stay as they are.

Usage::

    pancreas-node phantom --out COHORT --patients 20 --seed 11 --biological-borderline 0
    python scripts/add_domain_stats.py bundles/demo COHORT \
        --source "pancreas-node phantom --seed 11 (the image branch's cohort)"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from inference.bundle import add_domain, load_bundle  # noqa: E402
from training.dataset import discover_cases  # noqa: E402
from training.domain_stats import DOMAIN_SAMPLE, cohort_domain  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Measure the cohort and write the bundle's ``domain`` section; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument("cohort", type=Path, help="cohort folder (pancreas-node phantom --out)")
    parser.add_argument("--source", required=True, help="what the cohort is (recorded)")
    parser.add_argument("--limit", type=int, default=DOMAIN_SAMPLE, help="CTs measured at most")
    args = parser.parse_args(argv)
    bundle = load_bundle(args.bundle)
    cases = discover_cases(args.cohort)
    section = cohort_domain(cases, bundle.preprocess, source=args.source, limit=args.limit)
    path = add_domain(bundle.path, section)
    load_bundle(bundle.path)  # the rewritten bundle still verifies
    sys.stdout.write(f"wrote the domain section ({section['cases']} CTs) to {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
