"""A run's value of a metric (a summary.json or eval.json field, or a point of its curve), its aggregate over the
runs of a row, and which way it is better."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from regbench.errors import UserError
from regbench.metrics import metric_of
from regbench.report.runs import Run
from regbench.run_dir import EVALUATED, METRICS, SUMMARY
from regbench.run_dir.evaluated import plain

FORMS = "max:KEY, last:KEY or KEY@EPOCH"  # how a metrics.jsonl KEY is named
LOWER_IS_BETTER = "lower is better"


@dataclass(frozen=True)
class Stat:
    """One metric over the runs of a row: mean, sample standard deviation (None for a single value), count."""
    mean: float
    std: float | None
    n: int
    integer: bool                 # every value was an int (parameter counts, epochs)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_value(run: Run, metric: str) -> float | int | None:
    """A summary.json field (else the eval.json one), `KEY@E` (metrics.jsonl KEY at epoch E), `max:KEY` (largest KEY
    in metrics.jsonl), `last:KEY` (KEY of the last metrics.jsonl line that has it) or `NAME[OVERRIDES]` (an eval.json
    figure computed with overrides, which may hold any character)."""
    if plain(metric) != metric:
        return run.evaluated[metric] if _number(run.evaluated.get(metric)) else None
    kind, _, key = metric.rpartition(":")
    if kind in ("max", "last"):
        found = [r[key] for r in run.metrics if _number(r.get(key))]
        return (max(found) if kind == "max" else found[-1]) if found else None
    if "@" in metric:
        key, epoch = metric.split("@")
        for r in reversed(run.metrics):
            if _number(r.get("epoch")) and abs(r["epoch"] - float(epoch)) < 5e-4 and _number(r.get(key)):
                return r[key]
        return None
    for stored in (run.summary, run.evaluated):
        if _number(stored.get(metric)):
            return stored[metric]
    return None


def metric_values(runs: Sequence[Run], metric: str) -> list[float | int]:
    """`metric` of each run that has it."""
    return [v for v in (metric_value(r, metric) for r in runs) if v is not None]


def aggregate(values: Sequence[float | int]) -> Stat | None:
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values), all(isinstance(v, int) for v in values))


def _numeric_keys(stored: Sequence[dict[str, Any]]) -> str:
    return ", ".join(sorted({k for d in stored for k, v in d.items() if _number(v)})) or "nothing"


def require_metric(runs: Sequence[Run], metric: str) -> None:
    """A UserError listing what the runs have when none of them has `metric`."""
    if not metric_values(runs, metric):
        raise UserError(f"--metric {metric}: no run has it; the runs have {_numeric_keys([r.summary for r in runs])} "
                        f"({SUMMARY}), {_numeric_keys([r.evaluated for r in runs])} ({EVALUATED}) and, as {FORMS}, "
                        f"{_numeric_keys([m for r in runs for m in r.metrics])} ({METRICS})")


def direction(metric: str) -> bool | None:
    """Whether a larger `metric` is better, as regbench.metrics knows it; None for a figure it does not know."""
    try:
        return metric_of(plain(metric)).higher_is_better
    except UserError:
        return None


def known_direction(metric: str) -> bool:
    """The direction regbench.metrics knows for `metric`; a UserError naming the override when it knows none."""
    higher = direction(metric)
    if higher is None:
        raise UserError(f"regbench does not know whether a higher or a lower {metric} is better: pass --metric "
                        f"{metric} with --higher-is-better or --lower-is-better")
    return higher
