"""What `regbench eval` keeps in a run folder for tables and for later invocations: `eval.json`, the figures (test_acc,
test_ece, corruption_error, ood_auroc, ...) by family, each family with what it was computed from, merged over
invocations; and `eval_args.json`, the arguments of every evaluation already made (so that a sweep's evaluation skips
them). Both change under the run's lock, so that evaluations of one run at the same time lose nothing.

eval.json is {"figures": {name: value}, "families": {family: {"checkpoint", "stamp", "overrides", ..., "figures":
[names]}}}. An evaluation with overrides that change what it computes (every key but identity.py's OTHER ones: device,
threads, evaluation batch size, ...) names its families and figures with them, `test_acc[dataset.data_file=b.tar.gz]`,
beside the plain names of the evaluation without them."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from regbench.atomic_files import locked
from regbench.identity import Kind, kind
from regbench.run_dir import EVALUATED, EVALUATED_ARGUMENTS, EVALUATED_LOCK, checkpoint, read_json, write_json

# what a family's provenance keys mean, for the line that says why its figures were replaced
CHANGES = {"stamp": "checkpoint file (the run was trained further or again)", "corruptions": "corruption folder",
           "files": "corruption files", "baseline": "baseline run", "baseline_stamp": "baseline checkpoint file",
           "ood": "OOD dataset"}

log = logging.getLogger(__name__)


def qualifying(overrides: Sequence[str]) -> list[str]:
    """The overrides that change what an evaluation computes, sorted: all but those of identity.py's OTHER keys."""
    return sorted(o for o in overrides if kind(o.split("=", 1)[0].lstrip("+~")) is not Kind.OTHER)


def qualified(name: str, overrides: Sequence[str]) -> str:
    """`name` as eval.json stores it for an evaluation with `overrides`: plain without qualifying ones, else followed
    by them in brackets, test_acc[dataset.data_file=b.tar.gz]."""
    marks = qualifying(overrides)
    return f"{name}[{' '.join(marks)}]" if marks else name


def plain(name: str) -> str:
    """A stored figure's name without its overrides: the part that names its metric."""
    return name.split("[", 1)[0]


def _contents(run: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(figures, families) of the run's eval.json; an older regbench's flat file is all figures, no families."""
    data = read_json(run / EVALUATED) or {}
    if isinstance(data.get("figures"), dict) and isinstance(data.get("families"), dict):
        return data["figures"], data["families"]
    return data, {}


def figures(run: Path) -> dict[str, Any]:
    """The figures of the run's eval.json by name."""
    return _contents(run)[0]


def store_evaluation(run: Path, families: Mapping[str, dict[str, Any]],
                     arguments: dict[str, Any] | None = None) -> None:
    """Under the run's lock, merge `families` (family -> what it was computed from: checkpoint, stamp, overrides, ...,
    and `figures`, name -> value) into eval.json and add `arguments` to eval_args.json. Families and figures are
    named with the evaluation's qualifying overrides; a family's earlier figures are replaced, with a warning when
    they were computed from something else or stored by an older regbench that did not say how."""
    with locked(run / EVALUATED_LOCK):
        stored, known = _contents(run)
        for family, entry in families.items():
            name = qualified(family, entry["overrides"])
            values = {qualified(k, entry["overrides"]): v for k, v in entry["figures"].items()}
            provenance = {k: v for k, v in entry.items() if k != "figures"}
            if name in known:
                _say_replaced(run, name, known[name], provenance)
                for old in known[name].get("figures", []):
                    stored.pop(old, None)
            else:
                claimed = {n for f in known.values() for n in f.get("figures", [])}
                unknown = sorted(set(values) & set(stored) - claimed)
                if unknown:
                    log.warning(f"{run / EVALUATED}: {', '.join(unknown)} replaced; they were stored by an older "
                                f"regbench, which did not record what it computed them from")
            stored.update(values)
            known[name] = {**provenance, "figures": sorted(values)}
        write_json(run / EVALUATED, dict(figures=stored, families=known), indent=1, sort_keys=True, newline=False)
        done = read_json(run / EVALUATED_ARGUMENTS, list) or []
        if arguments is not None and arguments not in done:
            write_json(run / EVALUATED_ARGUMENTS, [*done, arguments], indent=1, newline=False)


def _say_replaced(run: Path, family: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """One warning line when a family's figures replace some computed from another source (the overrides that do not
    qualify names, e.g. threads, may differ silently)."""
    changed = [CHANGES.get(k, k) for k in sorted({*old, *new} - {"figures", "overrides"}) if old.get(k) != new.get(k)]
    if changed:
        log.warning(f"{run / EVALUATED}: the {family} figures replace those computed with another {', '.join(changed)}")


def checkpoint_stamp(run: Path, name: str) -> list[int] | None:
    """[size, modification time in ns] of the checkpoint file (a run resumed and trained further has another), None
    when there is none."""
    try:
        stat = checkpoint(run, name).stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def scored_before(run: Path, arguments: dict[str, Any]) -> bool:
    """Whether the run was evaluated with exactly these arguments."""
    return arguments in (read_json(run / EVALUATED_ARGUMENTS, list) or [])
