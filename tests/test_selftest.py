"""`regbench selftest` as a user runs it: real runs of every path, one JSON line per check, exit 1 on a failure."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import regbench
from regbench.selftest import compare_runs

STATUSES = {"passed", "failed", "not available"}
GPU_ONLY = ("train/fp16", "train/bf16", "resume/fp16", "resume/bf16", "data-parallel")


def checks(stdout: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in stdout.splitlines()]  # every line parses
    for row in rows:
        assert set(row) == {"check", "status", "reason", "seconds"} and row["status"] in STATUSES, row
        assert row["reason"] and "\n" not in row["reason"] and row["seconds"] >= 0, row
    return {row["check"]: row for row in rows}


@pytest.mark.slow
def test_selftest_on_this_cpu_passes_every_path_it_has(tmp_path: Path) -> None:
    # every kind of check; of the model × act grid the two small models (the ResNets' steps would double the time,
    # and tests/test_models.py and the export tests run them)
    small = ("lenet5", "mynet")
    only = ",".join([*(f"train/fp32/{m}/" for m in small), *GPU_ONLY, "compile", "resume", "export"])
    proc = regbench("selftest", "--only", only, "--keep", str(tmp_path / "runs"), cwd=tmp_path, timeout=1800)
    rows = checks(proc.stdout)
    from regbench.config import CONF_DIR

    acts = sorted(p.stem for p in (CONF_DIR / "act").glob("*.yaml"))
    assert {k for k in rows if k.startswith("train/fp32/")} == {f"train/fp32/{m}/{a}" for m in small for a in acts}
    for name in GPU_ONLY:
        assert rows[name]["status"] == "not available" and "GPU" in rows[name]["reason"], rows[name]
    available = {k: r for k, r in rows.items() if k not in GPU_ONLY}
    assert all(r["status"] == "passed" for r in available.values()), available
    assert "SIGKILL" in rows["resume/fp32"]["reason"]
    assert "check  " in proc.stderr and "passed" in proc.stderr.splitlines()[-2]  # the table, its tally last
    # the kept runs: the killed-and-resumed run equals the uninterrupted one, which the check itself compared
    runs = tmp_path / "runs"
    assert compare_runs(runs / "resume-fp32-killed", runs / "resume-fp32-straight") is None
    assert compare_runs(runs / "resume-fp32-killed", runs / "compile") is not None


def test_a_failing_check_makes_it_exit_1(tmp_path: Path) -> None:
    # a real failure: a disk too small for a checkpoint (a file-size limit the runs inherit, as in test_faults.py)
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # MyNet's checkpoint is about 1.3 MB
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.run([sys.executable, "-m", "regbench", "selftest", "--only", "train/fp32/mynet/relu,export/paddle"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, preexec_fn=limited,
                          env={**os.environ, "TMPDIR": str(scratch)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = checks(proc.stdout)
    assert list(rows) == ["train/fp32/mynet/relu", "export/paddle"]
    for row in rows.values():
        assert row["status"] == "failed" and "File too large (EFBIG)" in row["reason"], row
    assert proc.stderr.splitlines()[-1] == "regbench: error: 2 of 2 checks failed: train/fp32/mynet/relu, export/paddle"
    assert "Traceback" not in proc.stderr
    assert not list(scratch.iterdir())  # without --keep, its scratch folder is removed


@pytest.mark.parametrize("args, message", [
    (["--only", "train/fp64"], "--only train/fp64: no check is named train/fp64"),
    (["--export-tolerance", "-1"], "--export-tolerance -1.0 is invalid"),
])
def test_bad_options_are_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = regbench("selftest", *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""
