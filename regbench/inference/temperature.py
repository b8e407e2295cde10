"""`regbench eval --temperature-scale`: the figures after one temperature fitted on the val split (Guo et al. 2017, "On
Calibration of Modern Neural Networks"), and their reliability diagram."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import log_softmax, softmax

from regbench import metrics
from regbench.errors import UserError
from regbench.inference.analysis import Analysis, Context, Families, Step
from regbench.inference.figures import calibration_line, plot_reliability
from regbench.inference.request import EvalRequest
from regbench.inference.scorer import Scorer, split_of
from regbench.run_dir import reliability_png

if TYPE_CHECKING:
    from regbench.scoring import Scores

log = logging.getLogger("regbench")

# the range a fitted temperature may take: far beyond what a trained classifier needs either way
TEMPERATURE_BOUNDS = (1e-2, 1e2)


def scaled_probs(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) as float32 [N, C]."""
    return softmax(logits.astype(np.float64) / temperature, axis=1).astype(np.float32)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 whose softmax(logits / T) has the least mean NLL of `labels`: a bounded scalar search
    over log T (the NLL is smooth and unimodal in it), in float64."""
    from scipy.optimize import minimize_scalar

    logits, rows = logits.astype(np.float64), np.arange(len(labels))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / math.exp(log_t), axis=1)[rows, labels].mean())

    low, high = TEMPERATURE_BOUNDS
    found = minimize_scalar(nll, bounds=(math.log(low), math.log(high)), method="bounded", options=dict(xatol=1e-6))
    temperature = math.exp(found.x)
    if not low * 1.001 < temperature < high / 1.001:
        log.warning("the fitted temperature %.4g is at the end of its range [%g, %g]: the val NLL still falls beyond "
                    "it (a model that has barely trained tends to uniform predictions)", temperature, low, high)
    return temperature


def _arguments(run: Path, request: EvalRequest) -> dict[str, Any]:
    return dict(temperature_scale=request.temperature_scale)


def _prepare(ctx: Context) -> Step | None:
    if not ctx.request.temperature_scale:
        return None
    if ctx.split_name == "val":
        raise UserError("--temperature-scale fits the temperature on the val split, so it cannot score val too: "
                        "score --split test (a run whose val is its test set, dataset.val_size=0, has no split to "
                        "fit on that is not scored)")

    def step(scores: Scores, scored: Scorer) -> tuple[dict[str, Any], Families]:
        """Fit the temperature on val, score the split's logits divided by it, draw their reliability diagram."""
        val_split = split_of(ctx.cfg, "val")[1]
        val = scored(val_split)
        temperature = fit_temperature(val.logits, val.labels)
        probs = scaled_probs(scores.logits, temperature)
        bins = metrics.calibration_bins(probs, scores.labels)
        logits = scores.logits.astype(np.float64) / temperature
        scaled = metrics.from_tally(metrics.tally(probs, scores.labels, logits=logits))
        png = ctx.figure(reliability_png(ctx.split_name, ctx.request.checkpoint, temperature=True))
        plot_reliability(png, bins, f"{ctx.heading}, temperature {temperature:.3f} fitted on val\n"
                                    f"{calibration_line(scaled, scores.n)}")
        part = dict(temperature=temperature, fitted_on="val", val_n=val.n, val_skipped=len(val_split) - val.n,
                    **scaled, reliability_png=str(png))
        family = metrics.prefix(ctx.start, "ts", ctx.split_name)
        return part, {family: dict(ctx.source, fitted_on="val", figures=metrics.named(family, "temperature", scaled))}

    return step


TEMPERATURE = Analysis("temperature_scaled", _arguments, _prepare)
