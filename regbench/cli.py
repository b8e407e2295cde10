"""`regbench` command line: one entry point that dispatches to subcommands."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Callable

USAGE = """usage: regbench COMMAND [ARGS]

commands:
  train [overrides]       train one configuration (Hydra overrides; -m sweeps, --cfg job, --help, -sc)
  summary [overrides]     print the composed model's parameter, FLOP and MAC counts as one JSON line (no data loaded)
  bench [overrides]       time training and evaluation of a configuration: one JSON line each; -m adds a ratio table
  reproduce ARTICLE [--budget full|quick|...] [overrides]
                          run an article's grid (dropblock, dropout, dyrelu, nndl, league, league_cpu,
                          dropblock_imagenet, dyrelu_imagenet) as one sweep, then its table
  table DIR [DIR ...] [--metric NAME] [--baseline KEY=VALUE]
                          aggregate run folders into tables, each row against a baseline row in one metric
                          ({table_md}, {table_csv} in DIR)
  plot DIR [DIR ...]      plot val accuracy and train loss per group into DIR
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


def _require_paddle() -> None:
    try:
        import paddle  # noqa: F401
    except ImportError:
        _fail("PaddlePaddle is not installed: pip install 'regbench[cpu]' (paddlepaddle) on CPU machines "
              "or 'regbench[gpu]' (paddlepaddle-gpu) on CUDA machines, never both")


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


def _preflight(argv: list[str]) -> None:
    """Unless Hydra is only asked for help: compose and check every job's config, apply what Paddle reads when it
    loads, load Paddle and build each job's model, so that mistakes cost no work."""
    from omegaconf import OmegaConf

    from regbench.jobs import command_jobs
    from regbench.track import require
    from regbench.tune import require_held_out, require_sweeper
    from regbench.train import process_env
    from regbench.train.resume_check import check_resume

    if not any(a in ("--help", "-h", "--hydra-help", "--info", "-i") or a.startswith(("-sc", "--shell-completion"))
               for a in argv):
        require_sweeper(argv)
        jobs = command_jobs(argv)
        for job in jobs:  # before Hydra rewrites the saved config of the folder it resumes
            check_resume(job.cfg, job.folder)
            require(job.cfg.logger)  # a chosen tracker's package is installed
        process_env.prepare(jobs[0].cfg.trainer)
        _require_paddle()
        for job in jobs:  # a search's trials never select on the test split
            if job.search:
                require_held_out(job.cfg)
        from regbench.models import build_model

        built: set[str] = set()
        for job in jobs:  # a model that does not fit the data fails here, before any work
            key = json.dumps([OmegaConf.to_container(job.cfg[k], resolve=True) for k in ("model", "act", "reg")])
            if key not in built:
                built.add(key)
                build_model(job.cfg.model, job.cfg.act, job.cfg.reg)


def _data_parallel(argv: list[str]) -> list[str]:
    """Under paddle.distributed.launch all ranks share one named run folder, and only rank 0 writes to it."""
    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) <= 1:
        return argv
    if not any(a.startswith("hydra.run.dir=") for a in argv):
        _fail("data-parallel training needs hydra.run.dir=DIR on the command line, so that all ranks share one run folder")
    if int(os.environ.get("PADDLE_TRAINER_ID", "0")) > 0:
        return [*argv, "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    return argv


def _train(argv: list[str]) -> None:
    from regbench.config import hydra_app

    argv = _data_parallel(argv)
    _preflight(argv)
    from regbench.run import train

    hydra_app(train, argv, prog="regbench train")
    from regbench.report.sweep import NOT_COMPLETED

    if NOT_COMPLETED:
        _fail(f"{len(NOT_COMPLETED)} job(s) did not complete: " + "; ".join(NOT_COMPLETED[:3]), code=1)


def _bench(argv: list[str]) -> None:
    from regbench.bench import with_command_overrides
    from regbench.config import hydra_app

    argv = with_command_overrides(argv)
    _preflight(argv)
    from regbench.bench.table import ratio_table
    from regbench.bench.task import FAILED, RESULTS, bench

    hydra_app(bench, argv, prog="regbench bench")
    if RESULTS and ("-m" in argv or "--multirun" in argv):
        print(ratio_table(RESULTS))
    if FAILED:
        _fail(f"{len(FAILED)} combination(s) failed: " + "; ".join(FAILED[:3]), code=1)


def _reproduce(argv: list[str]) -> None:
    from regbench.articles import article_names
    from regbench.reproduce import sweep_overrides

    parser = argparse.ArgumentParser(prog="regbench reproduce", description="Run an article's grid as one sweep.")
    parser.add_argument("article", choices=article_names())
    parser.add_argument("--budget", default="full",
                        help="full: the article's own budget; quick, ...: the reductions its file names "
                             "(docs/reproducing.md)")
    args, overrides = parser.parse_known_args(argv)
    _train(sweep_overrides(args.article, args.budget, overrides))


def _summary(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="regbench summary", description="Print the composed model's parameter, "
                                     "FLOP and MAC counts as one JSON line (no data is loaded), per image at "
                                     "dataset.image_size: `flops` as paddle.flops counts them, `macs` the "
                                     "multiply-accumulates of convs, fcs and DY-ReLU (the papers' MAdds).")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=resnet18 dataset=cifar10")
    argv = parser.parse_args(argv).overrides
    _require_paddle()
    from regbench import regs
    from regbench.config import compose
    from regbench.models import build_model
    from regbench.models.summary import count_flops, count_macs, count_params

    cfg = compose(argv)
    choices = cfg.hydra.runtime.choices
    model = build_model(cfg.model, cfg.act, cfg.reg)
    input_shape = [1, cfg.dataset.channels, cfg.dataset.image_size, cfg.dataset.image_size]
    total, trainable = count_params(model)
    print(json.dumps(dict(model=choices.model, act=choices.act, reg=regs.label(cfg.reg), dataset=choices.dataset,
                          input_shape=input_shape, total_params=total, trainable_params=trainable,
                          flops=count_flops(model, input_shape[1:]), macs=count_macs(model, input_shape[1:]))))


def _report(kind: str, argv: list[str]) -> None:
    from regbench import run_dir

    what = {"table": "Aggregate run folders into tables, each row against a baseline row in one metric "
                     f"({run_dir.TABLE_MD}, {run_dir.TABLE_CSV} in the first DIR).",
            "plot": f"Plot val accuracy and train loss per group of runs ({run_dir.PLOT_PNG} in the first DIR)."}
    parser = argparse.ArgumentParser(prog=f"regbench {kind}", description=what[kind])
    parser.add_argument("dirs", nargs="+", help="run folders or sweep folders (searched at any depth)")
    if kind == "table":
        parser.add_argument("--baseline", metavar="KEY=VALUE",
                            help="the row every other is compared with (Δ, 95%% CI, p), e.g. reg=none; default: the "
                                 "article's baseline row, else reg=none or act=relu when the runs vary that key")
        parser.add_argument("--metric", metavar="NAME",
                            help=f"the metric rows are compared in: a {run_dir.SUMMARY} or {run_dir.EVALUATED} "
                                 "field (test_acc, test_ece, test_nll, ood_auroc, ...) or max:KEY, last:KEY, KEY@EPOCH "
                                 f"of {run_dir.METRICS}; default: the article's, else test_acc (best_val_acc without "
                                 "it)")
        direction = parser.add_mutually_exclusive_group()
        direction.add_argument("--higher-is-better", dest="higher_is_better", action="store_true", default=None,
                               help="for a --metric whose direction regbench does not know")
        direction.add_argument("--lower-is-better", dest="higher_is_better", action="store_false", default=None,
                               help="for a --metric whose direction regbench does not know (e.g. wall_time_s)")
    args = parser.parse_args(argv)
    from regbench import report
    from regbench.report.baseline import parse_baseline

    if kind == "table":
        if args.higher_is_better is not None and args.metric is None:
            _fail("--higher-is-better and --lower-is-better say the direction of --metric NAME: add --metric")
        print(report.write_table(args.dirs, parse_baseline(args.baseline) if args.baseline else None, args.metric,
                                 args.higher_is_better))
    else:
        print(report.write_plot(args.dirs))


def _eval(argv: list[str]) -> None:
    from regbench import run_dir
    from regbench.inference import SPLITS
    from regbench.inference.request import SETS, EvalRequest

    parser = argparse.ArgumentParser(prog="regbench eval", description="Score a run's checkpoint again: one JSON line "
                                     "(split, n, accuracy, loss, ECE, NLL, Brier, per-class accuracy, img/s), a "
                                     "confusion-matrix PNG and a reliability diagram PNG; the figures are merged into "
                                     f"RUN/{run_dir.EVALUATED}. Given a sweep folder, every completed run not yet "
                                     "evaluated with the same arguments, one JSON line each.")
    parser.add_argument("run", type=Path, help="a run folder (outputs/runs/<date>/<time>, or a numbered job folder of "
                        "a sweep) or a sweep folder (outputs/multirun/<date>/<time>)")
    parser.add_argument("--checkpoint", choices=run_dir.CHECKPOINTS, default=run_dir.BEST)
    parser.add_argument("--split", choices=SPLITS,
                        help="default: test when the dataset has a test split distinct from val, else val")
    parser.add_argument("--output", type=Path, help="the confusion-matrix PNG (default: "
                        f"RUN/{run_dir.confusion_png('<split>', '<checkpoint>')}); the reliability diagram goes "
                        f"beside it as {run_dir.reliability_png('<split>', '<checkpoint>')}")
    parser.add_argument("--save-probs", type=Path, metavar="FILE", help="write an .npz with probs (float32 [N, C], the "
                        "softmax of the logits) and labels (int64 [N]) of the scored split")
    parser.add_argument("--temperature-scale", action="store_true", help="also report the figures after one "
                        "temperature fitted on the val split (least NLL; Guo et al. 2017)")
    parser.add_argument("--corruptions", type=Path, metavar="DIR", help="also score every corruption x severity of DIR "
                        f"(the CIFAR-10-C layout, e.g. from regbench corrupt): RUN/{run_dir.CORRUPTIONS} and a "
                        "heatmap PNG")
    parser.add_argument("--baseline", type=Path, metavar="RUN", help="with --corruptions: Hendrycks & Dietterich's "
                        f"mCE and relative mCE against this run (its {run_dir.CORRUPTIONS} when it scored the same "
                        "files with the same checkpoint file and overrides, else it is scored again)")
    parser.add_argument("--corruptions-set", choices=SETS, help="with --corruptions: the corruptions the mean "
                        "corruption error and mCE cover (default: common, Hendrycks & Dietterich's 15, with the "
                        "official folders' 4 extra ones apart; every file of a folder without any of the 15)")
    parser.add_argument("--ood", metavar="OVERRIDES", help="also detect another dataset's test split as "
                        "out-of-distribution by maximum softmax probability, e.g. --ood dataset=cifar100")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the run's saved config, e.g. "
                        "dataset.data_file=PATH (another dataset of the same shape)")
    options = vars(parser.parse_intermixed_args(argv))
    target = options.pop("run")
    request = EvalRequest(**{**options, "overrides": tuple(options["overrides"])})
    _require_paddle()
    from regbench.inference.evaluate import evaluate

    for result in evaluate(target, request, lambda line: print(line, file=sys.stderr)):
        print(json.dumps(result), flush=True)


def _export(argv: list[str]) -> None:
    from regbench.inference import FORMATS, SPREAD_FACTOR, TOLERANCE_FLOOR
    from regbench.run_dir import BEST, CHECKPOINTS, EXPORT_DIR

    parser = argparse.ArgumentParser(prog="regbench export", description="Export a run's model for inference: a "
                                     "Paddle inference model (paddle.jit.save) or an ONNX file (paddle2onnx).")
    parser.add_argument("run", help="a run folder (outputs/runs/<date>/<time>, or a numbered job folder of a sweep)")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default=BEST)
    parser.add_argument("--output", help=f"folder for the files (default: RUN/{EXPORT_DIR}/<checkpoint>/)")
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset version")
    parser.add_argument("--check", type=int, default=32, metavar="N", help="compare the exported model's logits "
                        "with the eager model's on the first N val images (0: no check)")
    parser.add_argument("--tolerance", type=float, metavar="T", help="the largest max |Δlogits| the check accepts; "
                        f"further, nothing is exported and the command exits 1 (default: {TOLERANCE_FLOOR:g} or "
                        f"{SPREAD_FACTOR} times the eager model's own spread between batch shapes, whichever is larger)")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the run's saved config")
    args = parser.parse_intermixed_args(argv)
    if args.tolerance is not None and not args.tolerance >= 0:
        _fail(f"--tolerance {args.tolerance} is invalid: give a difference >= 0")
    _require_paddle()
    from regbench.inference.export import export_run

    output = Path(args.output) if args.output else None
    print(json.dumps(export_run(Path(args.run), args.format, args.checkpoint, output, args.overrides, args.opset,
                                args.check, args.tolerance)))


def _corrupt(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="regbench corrupt", description="Write a dataset's test split (val when it "
                                     "has none) corrupted, in the CIFAR-10-C layout: <corruption>.npy uint8 "
                                     "[5n, H, W, 3] (severities 1-5 stacked) and labels.npy [5n].")
    parser.add_argument("--out", required=True, help="the folder for the files")
    parser.add_argument("--corruptions", metavar="A,B,C", help="which corruptions (default: the 15 common ones)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides as for regbench train, e.g. dataset=cifar10 "
                        "dataset.data_file=PATH; seed=S seeds the corruptions")
    args = parser.parse_intermixed_args(argv)
    from regbench.data.corrupt import choose, write_corrupted

    names = choose(args.corruptions)
    _require_paddle()
    from regbench.config import compose
    from regbench.data import in_memory, load_splits

    cfg = compose(args.overrides)
    splits = load_splits(cfg.dataset)
    split_name, split = ("val", splits.val) if splits.test is None else ("test", splits.test)
    split = in_memory(split)
    source = dict(dataset=cfg.hydra.runtime.choices.dataset, split=split_name, n=len(split), overrides=args.overrides)
    failed = write_corrupted(split, Path(args.out), names, cfg.seed, source)
    print(json.dumps(dict(out=args.out, **source, seed=cfg.seed, written=[n for n in names if n not in failed])))
    if failed:
        _fail(f"imagecorruptions failed on {', '.join(failed)} (reported above); the other files are written", code=1)


def _selftest(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="regbench selftest", description="Check every path this machine has with "
                                     "tiny real runs (regbench train, eval, export in subprocesses): one JSON line per "
                                     "check on stdout (passed, failed or not available, with a one-line reason), a "
                                     "table on stderr; exit 1 if an available check fails.")
    parser.add_argument("--only", metavar="NAME,...", help="run only these checks (names or their leading parts, "
                        "e.g. train/fp32,resume,export/onnx)")
    parser.add_argument("--keep", metavar="DIR", help="keep the runs in DIR (a new or empty folder) instead of "
                        "removing them")
    parser.add_argument("--export-tolerance", type=float, metavar="T", help="the export checks' --tolerance "
                        "(default: regbench export's own)")
    args = parser.parse_args(argv)
    if args.export_tolerance is not None and not args.export_tolerance >= 0:
        _fail(f"--export-tolerance {args.export_tolerance} is invalid: give a difference >= 0")
    _require_paddle()
    from regbench.selftest import selftest

    checks = selftest(args.only, Path(args.keep) if args.keep else None, args.export_tolerance)
    failed = [c.check for c in checks if c.status == "failed"]
    if failed:
        _fail(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed[:5])}", code=1)


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "train": _train,
    "summary": _summary,
    "bench": _bench,
    "reproduce": _reproduce,
    "table": lambda argv: _report("table", argv),
    "plot": lambda argv: _report("plot", argv),
    "eval": _eval,
    "export": _export,
    "corrupt": _corrupt,
    "selftest": _selftest,
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
                           evaluated=run_dir.EVALUATED))
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        _fail(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)} (regbench --help)")
    try:
        COMMANDS[command](rest)
    except UserError as err:
        _fail(str(err), code=err.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)


if __name__ == "__main__":
    main()
