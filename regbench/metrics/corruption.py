"""Errors under corruption, each given as a mapping corruption -> error (1 - accuracy) at severities 1-5: the mean
corruption error (AugMix's CIFAR figure), and against a baseline run Hendrycks & Dietterich's corruption errors (CE)
and relative corruption errors, and their means over corruptions, mCE and relative mCE."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from regbench.errors import UserError

SEVERITIES = 5  # every corruption at severities 1-5 (Hendrycks & Dietterich; the CIFAR-10-C files stack them)
Errors = Mapping[str, Sequence[float]]  # corruption -> error at severities 1..5


def error_table(errors: Errors) -> np.ndarray:
    """errors as a float array [corruptions, 5], checked."""
    if not errors:
        raise ValueError("no corruptions to summarize")
    table = np.asarray([errors[name] for name in errors], dtype=np.float64)
    if table.shape[1:] != (SEVERITIES,):
        raise ValueError(f"every corruption needs one error per severity 1-{SEVERITIES}, got shape {table.shape}")
    return table


def mean_corruption_error(errors: Errors) -> float:
    """The unnormalized mean of the error over every corruption and severity (AugMix's CIFAR-10-C figure)."""
    return float(error_table(errors).mean())


def _paired(errors: Errors, baseline: Errors) -> tuple[np.ndarray, np.ndarray]:
    """The two tables, the baseline's in the order of `errors`; a UserError naming what the baseline lacks."""
    missing = [name for name in errors if name not in baseline]
    if missing:
        raise UserError(f"the baseline run has no scores under {', '.join(missing)}: score it on the same "
                        f"corruption files")
    return error_table(errors), error_table({n: baseline[n] for n in errors})


def corruption_errors(errors: Errors, baseline: Errors) -> dict[str, float]:
    """Hendrycks & Dietterich's CE per corruption: the error summed over severities over the baseline's sum."""
    ours, theirs = (table.sum(axis=1) for table in _paired(errors, baseline))
    zero = [name for name, total in zip(errors, theirs) if total == 0]
    if zero:
        raise UserError(f"the baseline run makes no error under {', '.join(zero)}: its corruption errors are "
                        f"undefined; choose another baseline")
    return {name: float(o / t) for name, o, t in zip(errors, ours, theirs)}


def relative_corruption_errors(errors: Errors, clean: float, baseline: Errors,
                               baseline_clean: float) -> dict[str, float | None]:
    """Hendrycks & Dietterich's relative CE per corruption: Σ_s (E_s − E_clean) over the baseline's Σ_s (E_s −
    E_clean), the degradation from the clean error relative to the baseline's; None where the baseline does not
    degrade (its sum is 0 or below: the ratio would have no meaning)."""
    ours, theirs = _paired(errors, baseline)
    # differences per cell before summing: a corruption that leaves the errors as they were sums to exactly 0
    ours, theirs = (ours - clean).sum(axis=1), (theirs - baseline_clean).sum(axis=1)
    return {name: float(o / t) if t > 0 else None for name, o, t in zip(errors, ours, theirs)}


def mean_ce(ces: Mapping[str, float | None]) -> float | None:
    """mCE (or relative mCE): the mean of the corruption errors over corruptions; None when one is undefined."""
    if not ces:
        raise ValueError("no corruption errors to average")
    values = list(ces.values())
    return None if any(v is None for v in values) else float(np.mean(values))


def mce(errors: Errors, clean: float, baseline: Errors, baseline_clean: float) -> float | None:
    """Hendrycks & Dietterich's mCE of `errors` against `baseline`'s (the clean errors play no part)."""
    return mean_ce(corruption_errors(errors, baseline))


def relative_mce(errors: Errors, clean: float, baseline: Errors, baseline_clean: float) -> float | None:
    """Hendrycks & Dietterich's relative mCE: None when the baseline does not degrade under some corruption."""
    return mean_ce(relative_corruption_errors(errors, clean, baseline, baseline_clean))
