"""The articles regbench reproduces: one YAML file each (ARTICLE.yaml, named as `regbench reproduce ARTICLE`).

A file holds the article's title, the run setup its rows start from (`experiment`: conf/experiment/NAME.yaml), its
rows (label, the overrides that make the row, the published numbers and where they come from), the baseline row that
every other row is compared with, the table's columns and the metric of the comparison, and its budgets (seeds and
reducing overrides). An article may run its rows in several tables (e.g. one per dataset): `tables` names them,
each with the overrides it adds to every row, and a row's published numbers are then given per table. Its `evaluate`
section says how `regbench reproduce` scores the trained runs and which metrics its report tables.
docs/reproducing.md documents every field.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from regbench.errors import UserError
from regbench.metrics import metric_of

ARTICLES_DIR = Path(__file__).parent


@dataclass(frozen=True)
class ArticleRow:
    label: str
    overrides: tuple[str, ...]         # what `regbench reproduce` adds to the experiment for this row
    # metric -> the article's number; in an article with tables: table name -> metric -> number
    published: dict[str, Any] = field(default_factory=dict)
    citation: str | None = None        # where `published` comes from, when not the article's own citation


@dataclass(frozen=True)
class ArticleTable:
    """One of an article's tables: every row once more, with `overrides` added in front of the row's own."""
    name: str                          # the key of the rows' published numbers for this table
    title: str                         # added to the article's title
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class Budget:
    seeds: tuple[int, ...]
    overrides: tuple[str, ...] = ()    # what the budget changes from the article's setup (empty: its own budget)


@dataclass(frozen=True)
class Corruptions:
    """The corrupted test sets the runs are scored on: a folder in the CIFAR-10-C layout, or files `regbench corrupt`
    generates from the first `limit` test images (once per dataset, cached under outputs/)."""
    folder: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class Evaluate:
    """How `regbench reproduce` scores each completed run (`regbench eval`) and what its report tables."""
    checkpoint: str = "best"
    splits: tuple[str, ...] = ("test",)
    metrics: tuple[str, ...] = ()      # one table each, every row against the baseline; empty: the compare column
    corruptions: Corruptions | None = None
    ood: tuple[tuple[str, ...], ...] = ()    # the dataset overrides whose test split is detected as OOD (one set)
    mc_samples: int | None = None      # MC scoring (`--mc-samples N`) of each run with stochastic layers
    ensemble: bool = False             # each row's seeds scored together (`--ensemble`)


EVALUATE_KEYS = {"checkpoint", "splits", "metrics", "corruptions", "ood", "mc_samples", "ensemble"}
CORRUPTIONS_KEYS = {"folder", "generate"}


@dataclass(frozen=True)
class Article:
    name: str                          # the command-line name: the file's stem
    title: str
    citation: str
    experiment: str                    # conf/experiment/NAME.yaml: the run setup every row starts from
    columns: dict[str, str]            # metric -> header
    compare: str                       # the metric of the Δ / 95% CI / p columns
    baseline: str                      # label of the row the others are compared with
    budgets: dict[str, Budget]
    rows: tuple[ArticleRow, ...]
    tables: tuple[ArticleTable, ...] = ()    # several tables: each row runs once per table
    scope: tuple[str, ...] = ()        # one table of several: the overrides its runs satisfy (the table's own)
    evaluate: Evaluate = Evaluate()

    @property
    def tabled(self) -> tuple[str, ...]:
        """The metrics the report tables, one table each: the evaluate section's, else the compared one."""
        return self.evaluate.metrics or (self.compare,)

    def parts(self) -> tuple[Article, ...]:
        """The article as one Article per table (each row's overrides and published numbers those of the table), or
        itself when it has a single table."""
        if not self.tables:
            return (self,)
        return tuple(replace(self, title=f"{self.title} · {t.title}", tables=(), scope=t.overrides,
                             rows=tuple(replace(r, overrides=(*t.overrides, *r.overrides),
                                                published=dict(r.published.get(t.name) or {})) for r in self.rows))
                     for t in self.tables)


ARTICLE_KEYS = {"title", "citation", "experiment", "budgets", "columns", "compare", "baseline", "rows", "tables",
                "evaluate"}


def article_names() -> list[str]:
    """The command-line names of the articles: the stems of the YAML files in this folder."""
    return sorted(p.stem for p in ARTICLES_DIR.glob("*.yaml"))


def load_article(name: str) -> Article:
    """The article `name` (a file stem), checked; a UserError names the valid ones when there is no such file."""
    path = ARTICLES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown article {name!r}; choose one of: {', '.join(article_names())}")
    return _parse(name, yaml.safe_load(path.read_text()))


def articles_by_experiment() -> dict[str, Article]:
    """Every article keyed by its experiment (each experiment belongs to one article)."""
    found: dict[str, Article] = {}
    for name in article_names():
        article = load_article(name)
        if article.experiment in found:
            raise ValueError(f"articles {found[article.experiment].name} and {name} both use experiment "
                             f"{article.experiment}: give each article a run setup of its own")
        found[article.experiment] = article
    return found


def _unknown(where: str, given: Any, known: set[str]) -> None:
    """A one-line UserError naming the keys of `given` that are not `known`."""
    unknown = sorted(set(given) - known) if isinstance(given, dict) else []
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def parse_evaluate(where: str, data: Any) -> Evaluate:
    """The `evaluate` section (None: the defaults); a one-line UserError for an unknown key or a bad value."""
    if data is None:
        return Evaluate()
    if not isinstance(data, dict):
        raise UserError(f"{where}: evaluate must be a mapping with keys {', '.join(sorted(EVALUATE_KEYS))}")
    _unknown(f"{where}: evaluate", data, EVALUATE_KEYS)
    found = Evaluate(checkpoint=data.get("checkpoint", "best"), splits=tuple(data.get("splits") or ("test",)),
                     metrics=tuple(data.get("metrics") or ()), corruptions=_corruptions(where, data.get("corruptions")),
                     ood=tuple(tuple(o) for o in data.get("ood") or ()), mc_samples=data.get("mc_samples"),
                     ensemble=data.get("ensemble", False))
    if found.checkpoint not in ("best", "last"):
        raise UserError(f"{where}: evaluate.checkpoint {found.checkpoint!r} must be best or last")
    if len(found.ood) > 1:  # a run's eval.json keeps one OOD detection: a second would replace the first
        raise UserError(f"{where}: evaluate.ood lists {len(found.ood)} override sets; give one")
    if found.mc_samples is not None and (type(found.mc_samples) is not int or found.mc_samples < 1):
        raise UserError(f"{where}: evaluate.mc_samples must be a number of stochastic passes >= 1 (e.g. 8)")
    if not isinstance(found.ensemble, bool):
        raise UserError(f"{where}: evaluate.ensemble must be true or false")
    for metric in found.metrics:
        try:
            metric_of(metric)  # tables need its direction
        except UserError as err:
            raise UserError(f"{where}: evaluate.metrics: {err}") from None
    return found


def _corruptions(where: str, data: Any) -> Corruptions | None:
    if data is None:
        return None
    if not isinstance(data, dict) or len(data) != 1:
        raise UserError(f"{where}: evaluate.corruptions takes one of folder: DIR or generate: {{limit: N}}")
    _unknown(f"{where}: evaluate.corruptions", data, CORRUPTIONS_KEYS)
    if "folder" in data:
        return Corruptions(folder=str(data["folder"]))
    generate = data["generate"] or {}
    _unknown(f"{where}: evaluate.corruptions.generate", generate, {"limit"})
    limit = generate.get("limit")
    if not isinstance(limit, int) or limit < 1:
        raise UserError(f"{where}: evaluate.corruptions.generate.limit must be a number of test images >= 1")
    return Corruptions(limit=limit)


def _parse(name: str, data: Any) -> Article:
    """An Article from a file's YAML; a ValueError says which field is wrong (a packaging mistake, not user input)."""
    where = f"{ARTICLES_DIR / name}.yaml"
    try:
        rows = tuple(ArticleRow(label=r["label"], overrides=tuple(r["overrides"]),
                                published=dict(r.get("published") or {}), citation=r.get("citation"))
                     for r in data["rows"])
        budgets = {k: Budget(seeds=tuple(b["seeds"]), overrides=tuple(b.get("overrides") or ()))
                   for k, b in data["budgets"].items()}
        tables = tuple(ArticleTable(name=t["name"], title=t["title"], overrides=tuple(t["overrides"]))
                       for t in data.get("tables") or ())
        article = Article(name=name, title=data["title"], citation=data["citation"], experiment=data["experiment"],
                          columns=dict(data["columns"]), compare=data["compare"], baseline=data["baseline"],
                          budgets=budgets, rows=rows, tables=tables,
                          evaluate=parse_evaluate(where, data.get("evaluate")))
        _unknown(where, data, ARTICLE_KEYS)
        parts = article.parts()
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{where}: missing or malformed field {err}") from None
    labels = [r.label for r in rows]
    problems = [
        (article.baseline not in labels, f"baseline {article.baseline!r} is not a row label"),
        (article.compare not in article.columns, f"compare {article.compare!r} is not a column"),
        (len(set(labels)) != len(labels), "row labels repeat"),
        ("full" not in budgets, "no full budget (the article's own)"),
        (any(not b.seeds for b in budgets.values()), "a budget without seeds"),
        (any(set(r.published) - set(article.columns) for a in parts for r in a.rows),
         "published numbers for a metric not in columns"),
        (bool(tables) and any(set(r.published) - {t.name for t in tables} for r in rows),
         "published numbers for a table not in tables (with tables, a row's numbers are given per table name)"),
        (len({t.name for t in tables}) != len(tables), "table names repeat"),
        (any("'" in o for a in parts for r in a.rows for o in r.overrides),
         "a row override with a quote (rows, with their tables' overrides, pass through Hydra's override grammar "
         "quoted)"),
    ]
    for bad, message in problems:
        if bad:
            raise ValueError(f"{where}: {message}")
    return article
