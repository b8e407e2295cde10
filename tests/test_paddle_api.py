"""Every Paddle API the package, its Hydra plugin and its scripts name exists in the installed Paddle and in Paddle
2.6.2, the oldest it supports.

GPU-only paths never run on a CPU, so the names are collected from the source. CI has Paddle 3 only: names are
checked against it, and against a snapshot of what Paddle 2.6.2 offers in the namespaces the package uses
(PADDLE_2_6_2), made by `python tests/test_paddle_api.py` in a Paddle 2.6.2 venv. An API only some versions have
is reached with getattr and a fallback, which this check leaves to the code."""
from __future__ import annotations

import ast
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import paddle
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / folder for folder in ("regbench", "hydra_plugins", "scripts")]  # what a user runs
PADDLE_2_6_2 = Path(__file__).with_name("paddle-2.6.2-names.json")


def paddle_names(source: str) -> set[str]:
    """The dotted paddle.… names a module's source uses: attribute chains on paddle and on the names its imports
    bind (`import paddle.nn as nn`, `import paddle.nn.functional as F`, `from paddle.x import y`), and those names."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "paddle":
                    aliases[alias.asname or "paddle"] = alias.name if alias.asname else "paddle"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "paddle":
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    names = set(aliases.values())
    for node in ast.walk(tree):
        attrs = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        if attrs and isinstance(node, ast.Name) and node.id in aliases:
            names.add(".".join([aliases[node.id], *reversed(attrs)]))
    return names


def resolve(dotted: str) -> Any:
    """The object a dotted name denotes (importing submodules on the way); AttributeError when it does not exist."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=2):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                raise AttributeError(f"{'.'.join(parts[:i - 1])} has no {part!r}") from None
    return obj


def test_the_collector_finds_calls_through_every_kind_of_import() -> None:
    source = ("import paddle\nimport paddle.nn as nn\nimport paddle.nn.functional as F\nfrom paddle.device import cuda\n"
              "from paddle.optimizer.lr import LRScheduler as Sched\nimport numpy as np\n"
              "def f(x: paddle.Tensor) -> nn.Layer:\n    cuda.reset_max_memory_allocated()\n"
              "    return F.relu(paddle.base.core.get_num_threads(np.zeros(1).shape))\n")
    assert paddle_names(source) == {
        "paddle", "paddle.nn", "paddle.nn.functional", "paddle.device.cuda", "paddle.optimizer.lr.LRScheduler",
        "paddle.Tensor", "paddle.nn.Layer", "paddle.device.cuda.reset_max_memory_allocated", "paddle.nn.functional.relu",
        "paddle.base", "paddle.base.core", "paddle.base.core.get_num_threads"}


USED = sorted({name for folder in SOURCES for path in folder.rglob("*.py") for name in paddle_names(path.read_text())})


def test_the_package_and_its_scripts_use_paddle_at_all() -> None:
    scripts = {n for path in (ROOT / "scripts").rglob("*.py") for n in paddle_names(path.read_text())}
    assert {"paddle.nn.Conv2D", "paddle.distributed.all_reduce", "paddle.nn.functional.cross_entropy"} <= set(USED)
    assert scripts and scripts <= set(USED)


@pytest.mark.parametrize("name", USED)
def test_every_paddle_name_the_package_uses_exists_in_this_paddle(name: str) -> None:
    try:
        resolve(name)
    except AttributeError as err:
        pytest.fail(f"Paddle {paddle.__version__}: {name} does not exist ({err}); reach it with getattr and a fallback")


@pytest.mark.parametrize("name", [n for n in USED if "." in n])
def test_every_paddle_name_the_package_uses_exists_in_paddle_2_6_2(name: str) -> None:
    namespaces = json.loads(PADDLE_2_6_2.read_text())
    parent, leaf = name.rsplit(".", 1)
    if parent not in namespaces:
        pytest.fail(f"{parent} is not in {PADDLE_2_6_2.name}: add it by running this file in a Paddle 2.6.2 venv "
                    "(python3 -m venv V && V/bin/pip install paddlepaddle==2.6.2 -e '.[test]' && "
                    "V/bin/python tests/test_paddle_api.py)")
    assert leaf in namespaces[parent], f"Paddle 2.6.2 has no {name}: reach it with getattr and a fallback"


if __name__ == "__main__":  # in a Paddle 2.6.2 venv: snapshot the namespaces the package uses
    assert paddle.__version__ == "2.6.2", f"this is Paddle {paddle.__version__}"
    parents = sorted({n.rsplit(".", 1)[0] for n in USED if "." in n})
    snapshot = {}
    for parent in parents:
        try:
            snapshot[parent] = sorted(dir(resolve(parent)))
        except AttributeError as err:
            print(f"{parent}: {err}", file=sys.stderr)
    PADDLE_2_6_2.write_text(json.dumps(snapshot, indent=0) + "\n")
    print(f"{PADDLE_2_6_2}: {len(snapshot)} namespaces, {sum(map(len, snapshot.values()))} names")
