"""The sections of `regbench table` as CSV: one line per row of every section, numbers unformatted."""
from __future__ import annotations

import csv
import io
import math
from typing import Any, Sequence

from regbench.report.baseline import Comparison
from regbench.report.power import MOST_SEEDS
from regbench.report.sections import Section


def _comparison(c: Comparison | None) -> dict[str, Any]:
    if c is None:
        return dict.fromkeys(("delta", "ci_low", "ci_high", "p", "p_adjusted", "undefined", "test", "pairs",
                              "prob_better", "prob_better_low", "prob_better_high", "seeds_for_power"), "")
    d, beats = c.difference, c.beats
    return dict(delta=d.delta, ci_low="" if d.ci is None else d.ci[0], ci_high="" if d.ci is None else d.ci[1],
                p="" if d.p is None else d.p, p_adjusted="" if d.p_adjusted is None else d.p_adjusted,
                undefined=d.undefined or "", test=d.test, pairs=d.pairs or "",
                prob_better=beats.estimate, prob_better_low="" if beats.ci is None else beats.ci[0],
                prob_better_high="" if beats.ci is None else beats.ci[1],
                seeds_for_power="" if c.seeds is None else f">{MOST_SEEDS}" if math.isinf(c.seeds) else int(c.seeds))


def render_csv(sections: Sequence[Section]) -> str:
    """One line per row of every section: mean, std, n, article value and difference, and against the baseline row in
    the `compare` metric (`higher_is_better`: its direction): the difference with its 95% CI and p (`undefined` says
    why those two are empty: n<2 or no spread), p adjusted over the report (`p_adjusted`, by `correction`), the
    `test` (paired or welch) and its `pairs`, P(A>B) with its 95% CI (`prob_better*`) and the seeds per row for 80%
    power (`seeds_for_power`, ">50" beyond the search)."""
    records: list[dict[str, Any]] = []
    for s in sections:
        for row in s.rows:
            record: dict[str, Any] = {"table": s.title, **row.values, "row": row.label if s.article else "",
                                      "budget": row.budget or "", "selected_on": row.selected_on,
                                      "status": row.status, "n": len(row.runs)}
            for m in s.columns:
                stat = row.stats[m]
                record.update({f"{m}_mean": stat.mean if stat else "", f"{m}_std": stat.std if stat and stat.std
                               is not None else "", f"{m}_n": stat.n if stat else 0})
                if m in s.published_columns:
                    diff = row.versus_article(m)
                    record.update({f"{m}_article": row.published.get(m, ""),
                                   f"{m}_vs_article": "" if diff is None else diff})
            if s.baseline:
                record.update(compare=s.compare, higher_is_better=s.higher_is_better, baseline=s.baseline,
                              is_baseline=row.is_baseline, correction=s.correction, **_comparison(row.comparison))
            records.append(record)
    fields = list(dict.fromkeys(k for rec in records for k in rec))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()
