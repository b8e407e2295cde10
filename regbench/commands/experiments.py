"""The commands that set up and run experiments from a config given as Hydra overrides: train, reproduce (train, score,
report), bench and summary."""
from __future__ import annotations

import argparse
import json
import os

from regbench.errors import UserError


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
    from regbench import run_dir
    from regbench.articles import article_names

    parser = argparse.ArgumentParser(prog="regbench reproduce", description="Run an article's study: train its grid "
                                     "as one sweep, score every completed run as its file declares, write the report "
                                     f"(SWEEP/{run_dir.REPORT_DIR}/). The same command again continues where it "
                                     "stopped.")
    parser.add_argument("article", choices=article_names())
    parser.add_argument("--budget", default="full",
                        help="full: the article's own budget; quick, ...: the reductions its file names "
                             "(docs/reproducing.md)")
    args, overrides = parser.parse_known_args(argv)
    from regbench.study.pipeline import run_study

    readme, failure = run_study(args.article, args.budget, overrides, train)
    print(readme)
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
