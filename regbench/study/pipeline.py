"""`regbench reproduce ARTICLE`'s stages: the grid trained (as one `regbench train` sweep, a progress line as each job
starts), every completed run scored as the article declares, the report written; study.json keeps the command, how
the grid ran and each stage's time summed over the command's invocations."""
from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

from regbench import run_dir
from regbench.articles import Article, load_article
from regbench.reproduce import launcher, sweep_folder, sweep_overrides
from regbench.study.progress import Progress, WatchSweep, job_label
from regbench.study.report import write_report
from regbench.study.score import ensemble_rows, score_sweep, seed_rows
from regbench.train.threads import available_cores

Train = Callable[[list[str]], "str | None"]  # `regbench train`: its arguments -> what failed, or None


def run_study(name: str, budget: str, overrides: list[str], train: Train) -> tuple[Path, str | None]:
    """Train, score and report article `name` at `budget`; returns the report's README and what failed in training."""
    article = load_article(name)
    parallel, how = launcher(overrides)
    sweep_args = [*sweep_overrides(name, budget, overrides), *parallel]
    sweep = sweep_folder(name, budget, overrides)
    earlier = run_dir.read_json(sweep / run_dir.STUDY) or {}
    stages = {k: float(v) for k, v in (earlier.get("stages") or {}).items()}
    study = dict(command=shlex.join(["regbench", "reproduce", name, "--budget", budget, *overrides]), article=name,
                 budget=budget, overrides=overrides, launcher=how,
                 corruptions=dataclasses.asdict(article.evaluate.corruptions) if article.evaluate.corruptions else None,
                 invocations=int(earlier.get("invocations", 0)) + 1, stages=stages)
    keys = row_keys(article)
    start = time.monotonic()
    total = sum(len(part.rows) for part in article.parts()) * len(article.budgets[budget].seeds)
    watch = WatchSweep(sweep, Progress("training", total), keys)
    watch.start()
    try:
        failure = train(sweep_args)
    finally:
        watch.stop()
    watch.progress.end()
    stages["training_s"] = round(stages.get("training_s", 0) + time.monotonic() - start, 1)
    run_dir.write_json(sweep / run_dir.STUDY, study)  # after the checks before training: bad input writes nothing

    start = time.monotonic()
    scoring = Progress("scoring", len(run_dir.sweep_runs(sweep) or []))
    score_sweep(sweep, article.evaluate, lambda line: print(line, file=sys.stderr),
                lambda i, n, run: scoring.step(i, job_label(run, keys), begun=i), jobs=available_cores() if parallel else 1)
    scoring.end()
    if article.evaluate.ensemble:
        rows = seed_rows(sweep)
        ensembling = Progress("ensembles", len(rows))
        ensemble_rows(rows, article.evaluate, lambda i, n, name: ensembling.step(i, name, begun=i))
        ensembling.end()
    stages["scoring_s"] = round(stages.get("scoring_s", 0) + time.monotonic() - start, 1)
    run_dir.write_json(sweep / run_dir.STUDY, study)
    return write_report([sweep], name), failure


def row_keys(article: Article) -> Callable[[str], bool]:
    """Whether a job's override is one of its row's or its seed: what its progress line shows."""
    row_overrides = {o for part in article.parts() for row in part.rows for o in row.overrides}
    return lambda o: o in row_overrides or o.startswith("seed=")
