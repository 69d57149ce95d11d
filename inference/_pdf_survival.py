"""The survival-prognosis page of the PDF report (result schema 1.7, issue 25).

A result with a ``prognosis`` section gets a page of its own after the first (and after the
lymph-node page, when there is one), drawn by :func:`inference._pdf_layout.draw_report` with
the same header and footer: the risk group in one line
(:meth:`~pancreas_contracts.prognosis.SurvivalPrognosis.describe`), a table of the death
probability by 1, 2 and 3 years from the fusion model and from each component model, the TNM
inputs with their source, the inputs used and missing, the model's warnings and version, the
investigational notice, and a small survival plot: the Kaplan-Meier curves of the bundle's
high- and low-risk training groups (when the bundle has them) as steps, and the patient's
predicted survival (``1 - death probability``) at 0, 12, 24 and 36 months as points joined by
a line. The first page names the risk group in one line (:func:`page_one_line`).
"""

from __future__ import annotations

import textwrap
from typing import Final

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from inference._sr_survival import survival_line, tnm_inputs
from pancreas_contracts.prognosis import (
    HORIZONS_MONTHS,
    HORIZONS_YEARS,
    KaplanMeierCurve,
    SurvivalPrognosis,
)

__all__ = ["PLOT_MONTHS", "page_one_line", "survival_block", "survival_plot"]

#: The plot's time axis (months from diagnosis): the three horizons and two years beyond.
PLOT_MONTHS: Final = (0.0, 60.0)
_RED: Final = "#b00020"
_BLUE: Final = "#1f5fa8"
_GREY: Final = "#555555"
_COLUMN: Final = 0.13
_STEP: Final = 0.0145


def page_one_line(prognosis: SurvivalPrognosis, page: int) -> str:
    """The first page's line on the prognosis (the details are on page ``page``)."""
    return f"{survival_line(prognosis)} (details on page {page})"


def _line(fig: Figure, y: float, text: str, **style: object) -> float:
    wrapped = "\n".join(textwrap.wrap(text, 115)) or "-"
    fig.text(0.06, y, wrapped, va="top", **style)  # type: ignore[arg-type]
    return y - _STEP * (wrapped.count("\n") + 1)


def _curve_colour(curve: KaplanMeierCurve) -> str:
    label = curve.label.lower()
    return _RED if "high" in label else _BLUE if "low" in label else _GREY


def survival_plot(ax: Axes, prognosis: SurvivalPrognosis) -> None:
    """Draw the reference Kaplan-Meier steps and the patient's predicted survival on ``ax``.

    Parameters
    ----------
    ax
        The axes (months 0-60 on x, survival probability 0-1 on y).
    prognosis
        ``result.prognosis``.
    """
    for curve in prognosis.reference_curves:
        months, survival = list(curve.months), list(curve.survival)
        if months[0] > 0.0:  # survival is 1 at diagnosis, before the curve's first step
            months, survival = [0.0, *months], [1.0, *survival]
        ax.step(months, survival, where="post", color=_curve_colour(curve), linewidth=1.2,
                label=f"{curve.label} (training, Kaplan-Meier)")  # fmt: skip
    ax.plot(
        [0.0, *HORIZONS_MONTHS],
        [1.0, *prognosis.survival_probability],
        color="black",
        marker="o",
        markersize=3.5,
        linewidth=1.0,
        label="This patient (predicted)",
    )
    ax.set_xlim(*PLOT_MONTHS)
    ax.set_ylim(0.0, 1.0)
    ax.set_xticks([0, 12, 24, 36, 48, 60])
    ax.set_xlabel("Months from diagnosis", fontsize=7.5)
    ax.set_ylabel("Survival probability", fontsize=7.5)
    ax.tick_params(labelsize=7)
    ax.grid(color="#dddddd", linewidth=0.5)
    ax.legend(fontsize=6.5, loc="lower left", frameon=False)


def _table(fig: Figure, prognosis: SurvivalPrognosis, y: float) -> float:
    x = 0.06
    models = list(prognosis.components)
    heads = ("Horizon", "Fusion", *models)
    for n, head in enumerate(heads):
        fig.text(x + n * _COLUMN, y, head, fontsize=7.5, color=_GREY, va="top")
    y -= _STEP
    for row, years in enumerate(HORIZONS_YEARS):
        cells = (
            f"{years} year{'s' if years != 1 else ''}",
            f"{prognosis.death_probability[row]:.2f}",
            *(f"{prognosis.components[m].death_probability[row]:.2f}" for m in models),
        )
        for n, cell in enumerate(cells):
            weight = "bold" if n == 1 else "normal"
            fig.text(x + n * _COLUMN, y, cell, fontsize=8, va="top", fontweight=weight)
        y -= _STEP
    return y


def survival_block(fig: Figure, prognosis: SurvivalPrognosis, y: float) -> float:
    """Draw the prognosis section from ``y`` down (figure coordinates); returns the ``y`` below.

    Parameters
    ----------
    fig
        The page.
    prognosis
        ``result.prognosis``.
    y
        Where the section's title goes.
    """
    x = 0.06
    fig.text(x, y, "Survival prognosis", fontsize=10.5, fontweight="bold", va="top")
    fig.add_artist(
        mpl.lines.Line2D([x, x + 0.88], [y - 0.018, y - 0.018], color="#999999", linewidth=0.6)
    )
    y -= 0.026
    colour = _RED if prognosis.risk_group == "high" else "black"
    y = _line(fig, y, prognosis.describe(), fontsize=9, fontweight="bold", color=colour)
    y = _line(fig, y - 0.004, "Probability of death within 1, 2 and 3 years of diagnosis, by the "
              "fusion model and the models it combines:", fontsize=8)  # fmt: skip
    y = _table(fig, prognosis, y)
    stages = "; ".join(f"{key}: {text}" for key, text in tnm_inputs(prognosis))
    used = ", ".join(prognosis.inputs_used) or "none"
    missing = ", ".join(prognosis.inputs_missing) or "none"
    y = _line(fig, y - 0.004, f"TNM inputs (AJCC 8th edition): {stages}", fontsize=8)
    y = _line(fig, y, f"Inputs used: {used}", fontsize=8)
    y = _line(fig, y, f"Inputs missing (imputed from the training folds): {missing}",
              fontsize=8)  # fmt: skip
    y = _line(fig, y, f"Model {prognosis.model_version}", fontsize=8)
    for warning in prognosis.warnings:
        y = _line(fig, y, f"Warning: {warning}", fontsize=8, color=_RED)
    ax = fig.add_axes((0.12, y - 0.31, 0.6, 0.28))
    survival_plot(ax, prognosis)
    y -= 0.35
    return _line(
        fig,
        y,
        "The fusion model combines the radiomics, DenseNet and clinical models' probabilities; "
        f"the risk group is high when its probability of death by {prognosis.risk_horizon_years} "
        f"years reaches the cut-off {prognosis.risk_cutoff:.2f}. The curves are the bundle's "
        "training cohort, not this patient's. Investigational, not for clinical use: a model's "
        "estimate from a CT and a few clinical values, not a prognosis by a physician.",
        fontsize=7,
        color=_GREY,
    )
