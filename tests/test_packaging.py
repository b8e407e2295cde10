"""What a user installs: the wheel holds every module and config file, its console script runs every command from
anywhere, and no shipped file names a path of the machine it was written on."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from regbench.cli import COMMANDS

SKIP = shutil.ignore_patterns(".*", "__pycache__", "*.pyc", "*.egg-info", "build", "dist", "outputs", "multirun")


def source_files(folder: str) -> set[str]:
    """Every file under REPO/folder, as a path relative to REPO (caches and hidden files left out)."""
    root = REPO / folder
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        found.update(str((Path(dirpath) / f).relative_to(REPO)) for f in filenames
                     if not f.startswith(".") and not f.endswith(".pyc"))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` would install, built from a copy of the source tree (a build leaves build/)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=SKIP)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(source)],
                   check=True, capture_output=True, text=True)
    (built,) = (tmp / "dist").glob("regbench-*.whl")
    return built


@pytest.mark.slow
def test_wheel_holds_every_module_and_config_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    package = source_files("regbench")
    assert {f for f in package if f.endswith(".py")} <= names
    assert {f for f in package if not f.endswith(".py")} <= names  # data: the articles' published numbers
    config = {f.replace("conf/", "regbench/conf/", 1) for f in source_files("conf")}
    assert len(config) > 30 and config <= names
    assert {f for f in source_files("hydra_plugins") if f.endswith(".py")} <= names  # the rows sweeper
    assert not {n for n in names if n.startswith(("conf/", "tests/", "scripts/"))}  # nothing installed top-level


@pytest.mark.slow
def test_installed_console_script_runs_every_command_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the wheel alone goes into the new venv; its dependencies are this environment's (a .pth file adds them
    # after the venv's own packages, and does not run their .pth files, so no editable regbench comes along)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True)
    parents = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "_test_dependencies.pth").write_text("\n".join(parents) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import regbench.cli, regbench.config as c; print(regbench.cli.__file__, "
                            "c.CONF_DIR)"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout
    assert str(REPO) not in where and where.startswith(site)
    script = venv / "bin" / "regbench"
    assert set(COMMANDS) >= {"train", "summary", "bench", "reproduce", "table", "plot"}
    for command in COMMANDS:
        proc = subprocess.run([str(script), command, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"regbench {command} --help:\n{proc.stdout}\n{proc.stderr}"
        assert f"usage: regbench {command}" in proc.stdout or "== Configuration groups ==" in proc.stdout, command
        assert "Traceback" not in proc.stderr, command
    assert not (tmp_path / "outputs").exists()
    # the installed rows sweeper (behind `regbench reproduce`) runs a grid of two rows
    sweep = tmp_path / "sweep"
    proc = subprocess.run([str(script), "train", "-m", "hydra/sweeper=rows", "hydra.sweeper.rows=[['reg=none'],"
                           "['reg=dropout','reg.p=0.3']]", "model=lenet5", "dataset=synthetic", "dataset.train_size=64",
                           "dataset.test_size=16", "trainer.max_steps=1", f"hydra.sweep.dir={sweep}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| Δ vs reg=none | 95% CI | p |" in (sweep / "table.md").read_text()


# a machine's own paths: its work tree, root's and users' homes (on Linux, macOS and Windows)
MACHINE_PATH = re.compile(r"/" + r"work/|/" + r"root/|/home/\w|/Users/\w|[A-Z]:\\Users\\")


def test_no_shipped_text_names_a_machine_path() -> None:
    shipped = source_files("regbench") | source_files("conf") | source_files("docs") | source_files("scripts")
    shipped |= {"README.md", "pyproject.toml", "setup.py"}
    offenders = []
    for name in sorted(shipped):
        try:
            text = (REPO / name).read_text()
        except UnicodeDecodeError:  # images
            continue
        offenders += [f"{name}:{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1)
                      if MACHINE_PATH.search(line)]
    assert not offenders, "\n".join(offenders)
