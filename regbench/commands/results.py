"""The commands on trained runs, given their run or sweep folders: eval, export, table, plot and report."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from regbench.errors import UserError


def table(argv: list[str]) -> None:
    """`regbench table`: run folders aggregated into tables."""
    _report("table", argv)


def plot(argv: list[str]) -> None:
    """`regbench plot`: run folders' curves."""
    _report("plot", argv)


def _report(kind: str, argv: list[str]) -> None:
    from regbench import run_dir

    what = {"table": "Aggregate run folders into tables, each row against a baseline row in one metric "
                     f"({run_dir.TABLE_MD}, {run_dir.TABLE_CSV} in the first DIR).",
            "plot": f"Plot val accuracy and train loss per group of runs ({run_dir.PLOT_PNG} in the first DIR)."}
    from regbench.report.correction import CORRECTIONS, HOLM

    parser = argparse.ArgumentParser(prog=f"regbench {kind}", description=what[kind])
    parser.add_argument("dirs", nargs="+", help="run folders or sweep folders (searched at any depth)")
    if kind == "table":
        parser.add_argument("--baseline", metavar="KEY=VALUE",
                            help="the row every other is compared with (Δ, 95%% CI, p), e.g. reg=none; default: the "
                                 "article's baseline row, else reg=none or act=relu when the runs vary that key")
        parser.add_argument("--metric", metavar="NAME", action="append",
                            help=f"the metric rows are compared in: a {run_dir.SUMMARY} or {run_dir.EVALUATED} "
                                 "field (test_acc, test_ece, test_nll, ood_auroc, ...) or max:KEY, last:KEY, KEY@EPOCH "
                                 f"of {run_dir.METRICS}; default: the article's, else test_acc (best_val_acc without "
                                 "it). Given several times: one table per metric "
                                 f"({run_dir.metric_table_md('NAME')}, {run_dir.metric_table_csv('NAME')}), their p "
                                 "adjusted as one family")
        parser.add_argument("--by", metavar="KEY",
                            help="also compare the rows across the tasks KEY tells apart (e.g. --by dataset): "
                                 "Friedman test of their mean ranks with a critical-difference diagram and the "
                                 "aggregate probability of improvement over the baseline, per --metric "
                                 f"({run_dir.across_tasks_md('KEY', 'METRIC')}, "
                                 f"{run_dir.critical_difference_png('KEY', 'METRIC')} in the first DIR)")
        parser.add_argument("--correction", choices=CORRECTIONS, default=HOLM,
                            help="how the p of all the comparisons tabled (rows x metrics) are adjusted for multiple "
                                 "comparisons: Holm's step-down procedure (default), Benjamini-Hochberg, or none")
        direction = parser.add_mutually_exclusive_group()
        direction.add_argument("--higher-is-better", dest="higher_is_better", action="store_true", default=None,
                               help="for a --metric whose direction regbench does not know")
        direction.add_argument("--lower-is-better", dest="higher_is_better", action="store_false", default=None,
                               help="for a --metric whose direction regbench does not know (e.g. wall_time_s)")
    args = parser.parse_args(argv)
    from regbench.report.baseline import parse_baseline
    from regbench.report.plot import write_plot
    from regbench.report.table import write_table

    if kind == "table":
        metrics = args.metric or []
        if args.higher_is_better is not None and len(metrics) != 1:
            raise UserError("--higher-is-better and --lower-is-better say the direction of one --metric NAME: give "
                            "exactly one --metric")
        print(write_table(args.dirs, parse_baseline(args.baseline) if args.baseline else None, metrics,
                          args.higher_is_better, args.correction, args.by))
    else:
        print(write_plot(args.dirs))


def report(argv: list[str]) -> None:
    """`regbench report`: a study's report folder from its run folders."""
    from regbench import run_dir
    from regbench.articles import article_names
    from regbench.report.correction import CORRECTIONS, HOLM

    parser = argparse.ArgumentParser(prog="regbench report", description="Write a study's report into "
                                     f"DIR/{run_dir.REPORT_DIR}/ (the first DIR): {run_dir.REPORT_README} (protocol, "
                                     "data and checksums, environment, wall time, the command that reproduces it, "
                                     "every table and figure linked), one table per metric, the curves, one pooled "
                                     "reliability diagram per row and the corruption figure when the runs have them.")
    parser.add_argument("dirs", nargs="+", help="sweep folders or run folders (searched at any depth)")
    parser.add_argument("--article", choices=article_names(), help="label rows and table metrics as this article's "
                        "file says (default: the article whose experiment the runs ran, else the swept keys)")
    parser.add_argument("--correction", choices=CORRECTIONS, default=HOLM, help="the adjustment of the p-values "
                        "over every comparison of the report (holm: Holm's step-down; bh: Benjamini-Hochberg)")
    args = parser.parse_args(argv)
    from regbench.study.report import write_report

    print(write_report(args.dirs, args.article, args.correction))


def evaluate(argv: list[str]) -> None:
    """`regbench eval`: a run's checkpoint scored again (every completed run of a sweep's)."""
    from regbench import run_dir
    from regbench.inference import SPLITS
    from regbench.inference.request import SETS, EvalRequest

    parser = argparse.ArgumentParser(prog="regbench eval", description="Score a run's checkpoint again: one JSON line "
                                     "(split, n, accuracy, loss, ECE, NLL, Brier, per-class accuracy, img/s), a "
                                     "confusion-matrix PNG and a reliability diagram PNG; the figures are merged into "
                                     f"RUN/{run_dir.EVALUATED}. Given a sweep folder, every completed run not yet "
                                     "evaluated with the same arguments, one JSON line each.")
    parser.add_argument("run", type=Path, nargs="?", help="a run folder (outputs/runs/<date>/<time>, or a numbered "
                        "job folder of a sweep) or a sweep folder (outputs/multirun/<date>/<time>)")
    parser.add_argument("--ensemble", nargs="+", metavar="RUN", help="score the mean softmax of these runs (e.g. a "
                        f"row's seeds) instead: ensemble_<split>_* figures in each one's {run_dir.EVALUATED} (with "
                        "--ood also by entropy and mutual information, with --corruptions under each corruption); "
                        "key=value overrides among them apply to all")
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
    parser.add_argument("--mc-samples", type=int, metavar="N", help="also score the mean softmax of N passes with "
                        "the run's stochastic layers (dropout, dropout2d, dropblock, droppath) on at their trained "
                        "rates, masks drawn from seeds.noise: mc<N>_* figures (with --ood also by predictive entropy "
                        "and mutual information; with --corruptions under each corruption)")
    parser.add_argument("--attack", dest="attacks", action="append", default=[], metavar="SPEC",
                        help="also score the split under an L-inf attack in [0, 1] pixel space: fgsm:EPS or "
                        "pgd:EPS:STEPS[:STEP] (step EPS/4 by default), e.g. fgsm:0.03; fgsm_EPS_* and pgd_EPS_STEPS_* "
                        "figures; may be given several times")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the run's saved config, e.g. "
                        "dataset.data_file=PATH (another dataset of the same shape)")
    options = vars(parser.parse_intermixed_args(argv))
    target, ensemble = options.pop("run"), options.pop("ensemble")
    overrides = options["overrides"] + [word for word in ensemble or [] if "=" in word]
    request = EvalRequest(**{**options, "overrides": tuple(overrides), "attacks": tuple(options["attacks"])})
    if ensemble is not None:
        from regbench.inference.ensemble import evaluate_ensemble

        runs = [Path(word) for word in ensemble if "=" not in word]
        print(json.dumps(evaluate_ensemble(([target] if target else []) + runs, request)), flush=True)
        return
    if target is None:
        parser.error("give a run or sweep folder, or --ensemble RUN RUN...")
    from regbench.inference.evaluate import evaluate

    for result in evaluate(target, request, lambda line: print(line, file=sys.stderr)):
        print(json.dumps(result), flush=True)


def export(argv: list[str]) -> None:
    """`regbench export`: a run's model for inference."""
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
        raise UserError(f"--tolerance {args.tolerance} is invalid: give a difference >= 0")
    from regbench.inference.export import export_run

    output = Path(args.output) if args.output else None
    print(json.dumps(export_run(Path(args.run), args.format, args.checkpoint, output, args.overrides, args.opset,
                                args.check, args.tolerance)))
