"""The Markdown table of a bench sweep: each combination's figures and its speed relative to the first."""
from __future__ import annotations

from typing import Any


def ratio_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the rows, with speed ratios to the first: × step = step time / first's step time,
    × eval = evaluation time per image / first's."""
    parsed = [dict(o.split("=", 1) for o in r["overrides"] if "=" in o) for r in rows]
    keys = list(dict.fromkeys(k for p in parsed for k in p))
    varying = [k for k in keys if len({p.get(k) for p in parsed}) > 1]
    first = rows[0]
    memory = "peak MB" if any(r["peak_mem_mb"] is not None for r in rows) else "max RSS MB"
    lines = [f"| combination | train img/s | step ms | × step | eval img/s | × eval | data ms/batch | data % of step "
             f"| {memory} |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r, p in zip(rows, parsed):
        label = " ".join(f"{k}={p[k]}" for k in varying if k in p) or " ".join(r["overrides"]) or r["model"]
        mem = r["peak_mem_mb"] if memory == "peak MB" else r["max_rss_mb"]
        lines.append(
            f"| {label} | {r['train_img_per_s']:.0f} | {r['step_ms']:.1f} "
            f"| {r['step_ms'] / first['step_ms']:.2f} | {r['eval_img_per_s']:.0f} "
            f"| {first['eval_img_per_s'] / r['eval_img_per_s']:.2f} | {r['data_ms_per_batch']:.2f} "
            f"| {100 * r['data_share_of_step']:.1f} | {mem} |")
    return "\n".join(lines)
