"""`regbench` command line: one entry point that picks the subcommand. Each subcommand (regbench/commands/) parses
its options, calls the module that does the work and returns None, or what failed (exit 1); bad input is a
UserError (exit 2)."""
from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from typing import Callable

from regbench.commands import experiments, results, tools

USAGE = """usage: regbench COMMAND [ARGS]

commands:
  train [overrides]       train one configuration (Hydra overrides; -m sweeps, --cfg job, --help, -sc)
  summary [overrides]     print the composed model's parameter, FLOP and MAC counts as one JSON line (no data loaded)
  bench [overrides]       time training and evaluation of a configuration: one JSON line each; -m adds a ratio table
  reproduce ARTICLE [--budget full|quick|...] [overrides]
                          an article's study (dropblock, dropout, dyrelu, nndl, league, league_cpu,
                          dropblock_imagenet, dyrelu_imagenet): train its grid, score the runs as its file
                          declares, write the report
  table DIR [DIR ...] [--metric NAME] [--baseline KEY=VALUE]
                          aggregate run folders into tables, each row against a baseline row in one metric
                          ({table_md}, {table_csv} in DIR)
  plot DIR [DIR ...]      plot val accuracy and train loss per group into DIR
  report DIR [DIR ...] [--article NAME] [--correction holm|bh|none]
                          a study's report folder in DIR/{report_dir}: README, a table per metric, curves, pooled
                          reliability diagrams, the corruption figure
  eval RUN_DIR|SWEEP_DIR [--checkpoint best|last] [--split S] [--corruptions DIR [--baseline RUN]
       [--corruptions-set common|extra|all]] [--ood O] [overrides]
                          score a run's checkpoint again (every completed run of a sweep): one JSON line per run,
                          confusion-matrix and reliability PNGs, figures kept in RUN/{evaluated}
  corrupt [overrides] --out DIR [--corruptions a,b,c]
                          write a dataset's test split corrupted (15 ImageNet-C corruptions x 5 severities) in the
                          CIFAR-10-C layout (needs the corrupt extra)
  export RUN_DIR --format paddle|onnx [--checkpoint best|last] [--tolerance T]
                          a Paddle inference model (paddle.jit.save) or an ONNX file (paddle2onnx)
  selftest [--only NAME,...] [--keep DIR]
                          check every path this machine has (each model x act, AMP, compile, kill and resume,
                          data parallel, export) with tiny real runs: a JSON line per check, exit 1 if one fails

Configs live in {conf}; `regbench train --help` lists the config groups and their options.
"""


def _fail(message: str, code: int = 2) -> None:
    print(f"regbench: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _paddle_imports() -> bool:
    try:
        import paddle  # noqa: F401
    except ImportError:
        return False
    return True


def _full_disk_as_errors() -> None:
    """A write past a file-size limit (ulimit -f) fails with EFBIG, reported like a full disk, instead of killing the
    process (SIGXFSZ); a log line that cannot reach train.log is dropped, not reported with a traceback each time."""
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    logging.raiseExceptions = False


def _quiet_imports() -> None:
    # Paddle warns about a missing C++ compiler cache on every import; it concerns custom-op builds only.
    warnings.filterwarnings("ignore", message="No ccache found")
    # BatchNorm2D says on every build that it tracks running statistics in training: that is what we want.
    warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")


COMMANDS: dict[str, Callable[[list[str]], str | None]] = {
    "train": experiments.train,
    "summary": experiments.summary,
    "bench": experiments.bench,
    "reproduce": experiments.reproduce,
    "table": results.table,
    "plot": results.plot,
    "report": results.report,
    "eval": results.evaluate,
    "export": results.export,
    "corrupt": tools.corrupt,
    "selftest": tools.selftest,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `regbench` console script."""
    from regbench import run_dir
    from regbench.config import CONF_DIR
    from regbench.errors import UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_imports()
    _full_disk_as_errors()
    # Hydra's shell completion calls the program itself (`regbench -sc query=bash`): route it to `train`.
    if argv and argv[0].startswith(("-sc", "--shell-completion")):
        if "COMP_LINE" in os.environ:
            os.environ["COMP_LINE"] = os.environ["COMP_LINE"].replace(" train", "", 1)
        argv = ["train", *argv]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(conf=CONF_DIR, table_md=run_dir.TABLE_MD, table_csv=run_dir.TABLE_CSV,
                           evaluated=run_dir.EVALUATED, report_dir=run_dir.REPORT_DIR))
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        _fail(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)} (regbench --help)")
    try:
        failure = COMMANDS[command](rest)
    except UserError as err:
        _fail(str(err), code=err.exit_code)
    except ImportError:  # Paddle is imported where a command first needs it, after the command's own checks
        if _paddle_imports():
            raise
        _fail("PaddlePaddle is not installed: pip install 'regbench[cpu]' (paddlepaddle) on CPU machines or "
              "'regbench[gpu]' (paddlepaddle-gpu) on CUDA machines, never both")
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    if failure:
        _fail(failure, code=1)


if __name__ == "__main__":
    main()
