"""The tools beside the experiments: corrupt (a dataset's test split corrupted, for `regbench eval --corruptions`)
and selftest (every path of this machine checked with tiny runs)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from regbench.errors import UserError


def corrupt(argv: list[str]) -> str | None:
    """`regbench corrupt`: the corrupted files and one JSON line saying what they were made from; a corruption the
    library could not apply fails the command (the others are written)."""
    parser = argparse.ArgumentParser(prog="regbench corrupt", description="Write a dataset's test split (val when it "
                                     "has none) corrupted, in the CIFAR-10-C layout: <corruption>.npy uint8 "
                                     "[5n, H, W, 3] (severities 1-5 stacked) and labels.npy [5n].")
    parser.add_argument("--out", required=True, help="the folder for the files")
    parser.add_argument("--corruptions", metavar="A,B,C", help="which corruptions (default: the 15 common ones)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides as for regbench train, e.g. dataset=cifar10 "
                        "dataset.data_file=PATH; seed=S seeds the corruptions")
    args = parser.parse_intermixed_args(argv)
    from regbench.data.corrupt_split import choose, corrupt_test_split

    names = choose(args.corruptions)
    from regbench.config import compose

    written, failed = corrupt_test_split(compose(args.overrides), Path(args.out), names, args.overrides)
    print(json.dumps(dict(out=args.out, **written)))
    if failed:
        return f"imagecorruptions failed on {', '.join(failed)} (reported above); the other files are written"
    return None


def selftest(argv: list[str]) -> str | None:
    """`regbench selftest`: a JSON line per check; a check that fails fails the command."""
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
        raise UserError(f"--export-tolerance {args.export_tolerance} is invalid: give a difference >= 0")
    from regbench.selftest import selftest as check_all

    checks = check_all(args.only, Path(args.keep) if args.keep else None, args.export_tolerance)
    failed = [c.check for c in checks if c.status == "failed"]
    return f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed[:5])}" if failed else None
