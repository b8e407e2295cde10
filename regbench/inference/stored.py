"""What `regbench eval` keeps in a run folder for tables and for later invocations: `eval.json`, a flat mapping of
figure names (test_acc, test_ece, corruption_error, ood_auroc, ...) to values merged over invocations, and
`eval_args.json`, the arguments of every evaluation already made (so that a sweep's evaluation skips them)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from regbench.files import write_text
from regbench.run_dir import EVALUATED

FIGURES = EVALUATED
ARGUMENTS = "eval_args.json"


def _read(path: Path, empty: Any) -> Any:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return empty
    return value if isinstance(value, type(empty)) else empty


def store_figures(run: Path, figures: dict[str, float]) -> None:
    """Merge `figures` into the run's eval.json (a newer value replaces an older one of the same name)."""
    write_text(run / FIGURES, json.dumps({**_read(run / FIGURES, {}), **figures}, indent=1, sort_keys=True))


def checkpoint_stamp(run: Path, checkpoint: str) -> list[int] | None:
    """[size, modification time in ns] of the checkpoint file (a run resumed and trained further has another), None
    when there is none."""
    try:
        stat = (run / "checkpoints" / f"{checkpoint}.npz").stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def scored_before(run: Path, arguments: dict[str, Any]) -> bool:
    """Whether the run was evaluated with exactly these arguments."""
    return arguments in _read(run / ARGUMENTS, [])


def record_arguments(run: Path, arguments: dict[str, Any]) -> None:
    """Add `arguments` to the run's evaluations made."""
    done = _read(run / ARGUMENTS, [])
    if arguments not in done:
        write_text(run / ARGUMENTS, json.dumps([*done, arguments], indent=1))
