"""Which runs of two rows are paired: those made with the same seeds (for seed s the same initial weights and data
order), whose difference is then free of the variance those seeds bring."""
from __future__ import annotations

from typing import Sequence

from regbench.identity import REPLICATES
from regbench.report.aggregate import metric_value
from regbench.report.runs import MISSING, Run, format_value


def seeds_of(run: Run) -> tuple[str, ...] | None:
    """The run's value of every key that varies between the runs of one row (`seed`, `seeds.*`, the split seed);
    None when its `seed` is unknown. A run made before a key existed has it back-filled at its default
    (regbench.saved_config: `seeds.*` follow its `seed`); one whose .hydra/ is gone is known by summary.json, which
    holds `seed` alone: its other seeds read "default"."""
    found = []
    for key in sorted(REPLICATES):
        value = run.value(key)
        value = run.summary.get(key) if value is MISSING else value  # a run folder whose .hydra/ is gone
        if value is None and key == "seed":
            return None
        found.append("default" if value is None else format_value(value))
    return tuple(found)


def _by_seeds(runs: Sequence[Run], metric: str) -> dict[tuple[str, ...], float]:
    found: dict[tuple[str, ...], list[float]] = {}
    for run in runs:
        value, seeds = metric_value(run, metric), seeds_of(run)
        if value is not None and seeds is not None:
            found.setdefault(seeds, []).append(value)
    return {seeds: values[0] for seeds, values in found.items() if len(values) == 1}


def paired_values(runs: Sequence[Run], others: Sequence[Run], metric: str) -> tuple[list[float], list[float]]:
    """`metric` of the runs of both sides made with the same seeds, aligned; seeds run twice on a side are left out
    (which of their runs pairs would be arbitrary)."""
    mine, theirs = _by_seeds(runs, metric), _by_seeds(others, metric)
    common = [seeds for seeds in mine if seeds in theirs]
    return [mine[s] for s in common], [theirs[s] for s in common]
