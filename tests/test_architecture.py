"""The package's floors: every import inside regbench/ points to a lower floor or stays in its own package."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "regbench"

# Lowest first. A unit is a top-level module or package of regbench.
FLOORS = (
    {"errors"},
    {"atomic_files", "identity", "device", "metrics"},  # atomic writes, a run's identity, where it computes, metrics of
    # predicted probabilities
    # the run folder's layout; what a run is made of, each on its own: data, activations, regularizers, articles
    {"run_dir", "data", "layers", "reg", "articles"},
    {"models", "scoring", "hparams_search"},  # models compose layers; scoring scores a model on data
    {"schema"},  # config checks (which metrics a search may optimize)
    {"config"},
    {"saved_config"},  # a run folder's saved config, the keys added since it was written back-filled from conf/
    {"track"},  # trackers
    {"train"},  # the loop, and building a trainer from a config (its data, model, batch regularizers)
    {"run", "bench", "inference", "report", "preflight", "reproduce"},  # the Hydra tasks, what reads run folders, and
    # the checks before a command line's jobs start
    {"selftest", "study"},  # selftest runs regbench in subprocesses; study: a sweep scored and reported
    {"commands"},  # each subcommand's options
    {"cli"},
    {"__main__"},
)


def unit(module: str) -> str | None:
    """regbench.train.loop -> "train"; None for modules outside the package."""
    parts = module.split(".")
    return parts[1] if parts[0] == "regbench" and len(parts) > 1 else None


def imports(path: Path) -> list[str]:
    """Every regbench module `path` imports, at any depth (function-level imports too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [node.module] if node.module != "regbench" else [f"regbench.{a.name}" for a in node.names]
    return out


def floor_of(name: str) -> int:
    return next(i for i, units in enumerate(FLOORS) if name in units)


def test_every_unit_of_the_package_has_a_floor() -> None:
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert units - {"conf"} == set().union(*FLOORS)


def test_imports_point_down_a_floor() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        own = rel.parts[0].removesuffix(".py")
        if own == "__init__" or own == "conf":
            continue
        for module in imports(path):
            target = unit(module)
            if target is not None and target != own and floor_of(target) >= floor_of(own):
                upward.append(f"{rel} imports {module}")
    assert upward == []
