"""The report's rows: the runs grouped as the tables group them, each with the name the tables give it."""
from __future__ import annotations

from typing import Sequence

from regbench.report.runs import Run
from regbench.report.sections import Row, Section, build_sections


def row_name(section: Section, row: Row) -> str:
    """The article's label for the row, else the swept choices that make it."""
    if section.article:
        return row.label
    return ", ".join(f"{k}={row.values[k]}" for k in section.keys) or "all runs"


def named_rows(runs: Sequence[Run], baseline: tuple[str, str] | None = None) -> list[tuple[str, Row]]:
    """(name, row) of every row of every table, in table order; the baseline row's name first within its table."""
    return [(row_name(section, row), row) for section in build_sections(runs, baseline=baseline)
            for row in section.rows]
