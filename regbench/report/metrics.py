"""One metric of a run (a summary.json field or a point of its curve) and its aggregate over the runs of a row."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from regbench.report.runs import Run


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
    """A summary.json field, `KEY@E` (metrics.jsonl KEY at epoch E), `max:KEY` (largest KEY in metrics.jsonl) or
    `last:KEY` (KEY of the last metrics.jsonl line that has it)."""
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
    value = run.summary.get(metric)
    return value if _number(value) else None


def metric_values(runs: Sequence[Run], metric: str) -> list[float | int]:
    """`metric` of each run that has it."""
    return [v for v in (metric_value(r, metric) for r in runs) if v is not None]


def aggregate(values: Sequence[float | int]) -> Stat | None:
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values), all(isinstance(v, int) for v in values))
