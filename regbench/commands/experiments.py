"""The commands that set up and run experiments from a config given as Hydra overrides: train, reproduce (train, score,
report), bench and summary."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from regbench.errors import UserError

if TYPE_CHECKING:
    from regbench.articles import Article


def train(argv: list[str]) -> str | None:
    """`regbench train`: Hydra's command line; a sweep's jobs that did not complete fail the command."""
    from regbench.config import hydra_app
    from regbench.preflight import preflight
    from regbench.report.sweep import JobsNotCompleted

    argv = _data_parallel(argv)
    preflight(argv)
    from regbench.run import train as task

    try:
        hydra_app(task, argv)
    except JobsNotCompleted as err:
        return str(err)
    return None


def _data_parallel(argv: list[str]) -> list[str]:
    """Under paddle.distributed.launch all ranks share one named run folder, and only rank 0 writes to it."""
    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) <= 1:
        return argv
    if not any(a.startswith("hydra.run.dir=") for a in argv):
        raise UserError("data-parallel training needs hydra.run.dir=DIR on the command line, so that all ranks share "
                        "one run folder")
    if int(os.environ.get("PADDLE_TRAINER_ID", "0")) > 0:
        return [*argv, "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    return argv


def reproduce(argv: list[str]) -> str | None:
    """`regbench reproduce ARTICLE`: the article's study — its grid trained as one `regbench train` sweep, every
    completed run scored as its file declares, then the report; rerun, it continues where it stopped."""
    import shlex
    import sys
    import time

    from regbench import run_dir
    from regbench.articles import article_names, load_article
    from regbench.reproduce import sweep_folder, sweep_overrides

    parser = argparse.ArgumentParser(prog="regbench reproduce", description="Run an article's study: train its grid "
                                     "as one sweep, score every completed run as its file declares, write the report "
                                     f"(SWEEP/{run_dir.REPORT_DIR}/). The same command again continues where it "
                                     "stopped.")
    parser.add_argument("article", choices=article_names())
    parser.add_argument("--budget", default="full",
                        help="full: the article's own budget; quick, ...: the reductions its file names "
                             "(docs/reproducing.md)")
    args, overrides = parser.parse_known_args(argv)
    article = load_article(args.article)
    sweep_args = sweep_overrides(args.article, args.budget, overrides)
    sweep = sweep_folder(args.article, args.budget, overrides)
    earlier = run_dir.read_json(sweep / run_dir.STUDY) or {}
    stages = {k: float(v) for k, v in (earlier.get("stages") or {}).items()}  # summed over the command's invocations
    study = dict(command=shlex.join(["regbench", "reproduce", args.article, "--budget", args.budget, *overrides]),
                 article=args.article, budget=args.budget, overrides=overrides, launcher=_launcher(overrides),
                 corruptions=dataclasses.asdict(article.evaluate.corruptions) if article.evaluate.corruptions else None,
                 invocations=int(earlier.get("invocations", 0)) + 1, stages=stages)
    start = time.monotonic()
    failure = _train_watched(sweep_args, sweep, article, len(article.budgets[args.budget].seeds))
    stages["training_s"] = round(stages.get("training_s", 0) + time.monotonic() - start, 1)
    run_dir.write_json(sweep / run_dir.STUDY, study)  # after the checks before training: bad input writes nothing
    from regbench.study.progress import Progress, job_label
    from regbench.study.score import score_sweep

    start = time.monotonic()
    runs = run_dir.sweep_runs(sweep) or []
    scoring = Progress("scoring", len(runs))
    score_sweep(sweep, article.evaluate, lambda line: print(line, file=sys.stderr),
                lambda i, n, run: scoring.step(i, job_label(run, _row_keys(article))))
    scoring.end()
    stages["scoring_s"] = round(stages.get("scoring_s", 0) + time.monotonic() - start, 1)
    run_dir.write_json(sweep / run_dir.STUDY, study)
    from regbench.study.report import write_report

    print(write_report([sweep], args.article))
    return failure


def _launcher(overrides: list[str]) -> str:
    """How the grid's jobs run, as the report states it."""
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra/launcher=")]
    if chosen:
        return f"hydra/launcher={chosen[-1]} (chosen on the command line)"
    return "Hydra's basic launcher: one run at a time in one process, trainer.threads=auto"


def _row_keys(article: Article) -> Callable[[str], bool]:
    """Whether a job's override is one of its row's or its seed: what its progress line shows."""
    row_overrides = {o for part in article.parts() for row in part.rows for o in row.overrides}
    return lambda o: o in row_overrides or o.startswith("seed=")


def _train_watched(argv: list[str], sweep: Path, article: Article, seeds: int) -> str | None:
    """`train(argv)` with a progress line as each of the sweep's jobs (the article's rows × `seeds`) starts."""
    from regbench.study.progress import Progress, WatchSweep

    total = sum(len(part.rows) for part in article.parts()) * seeds
    watch = WatchSweep(sweep, Progress("training", total), _row_keys(article))
    watch.start()
    try:
        failure = train(argv)
    finally:
        watch.stop()
    watch.progress.end()
    return failure


def bench(argv: list[str]) -> str | None:
    """`regbench bench`: one JSON line per combination, a sweep's ratio table; combinations that could not be measured
    fail the command."""
    from regbench.bench import with_command_overrides
    from regbench.config import hydra_app
    from regbench.preflight import preflight

    argv = with_command_overrides(argv)
    preflight(argv)
    from regbench.bench.table import ratio_table
    from regbench.bench.task import Unmeasured, bench as task

    returns = hydra_app(task, argv)
    rows = [r for r in returns if isinstance(r, dict)]
    failed = [r for r in returns if isinstance(r, Unmeasured)]
    if rows and ("-m" in argv or "--multirun" in argv):
        print(ratio_table(rows))
    return f"{len(failed)} combination(s) failed: " + "; ".join(failed[:3]) if failed else None


def summary(argv: list[str]) -> str | None:
    """`regbench summary`: the composed model's counts as one JSON line."""
    parser = argparse.ArgumentParser(prog="regbench summary", description="Print the composed model's parameter, "
                                     "FLOP and MAC counts as one JSON line (no data is loaded), per image at "
                                     "dataset.image_size: `flops` as paddle.flops counts them, `macs` the "
                                     "multiply-accumulates of convs, fcs and DY-ReLU (the papers' MAdds).")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=resnet18 dataset=cifar10")
    overrides = parser.parse_args(argv).overrides
    from regbench.config import compose
    from regbench.models.summary import describe

    print(json.dumps(describe(compose(overrides))))
    return None
