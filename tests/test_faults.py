"""Nothing lost: real training processes killed, interrupted, fed NaNs, bad configs and bad files."""
from __future__ import annotations

import ast
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import read_json, read_jsonl, regbench

# 3 epochs of 16 steps, evaluated every 8 steps: long enough to be killed in the middle
SMALL = ("model=mynet", "dataset=synthetic", "dataset.train_size=512", "dataset.test_size=64", "trainer.epochs=3",
         "trainer.batch_size=32", "trainer.eval_every_steps=8", "trainer.log_every=4")


def start(run: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "regbench", "train", *SMALL, *args, f"hydra.run.dir={run}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_metrics(run: Path, proc: subprocess.Popen, lines: int = 1, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run / "metrics.jsonl").exists() and len(read_jsonl(run / "metrics.jsonl")) >= lines:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended early:\n{proc.stdout.read()}")
        time.sleep(0.05)
    pytest.fail("no evaluation written in time")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("faults") / "full"
    regbench("train", *SMALL, f"hydra.run.dir={run}")
    return run


def assert_same_run(resumed: Path, full: Path) -> None:
    a, b = read_jsonl(resumed / "metrics.jsonl"), read_jsonl(full / "metrics.jsonl")
    assert [(r["step"], r["val_acc"], r["val_loss"]) for r in a] == [(r["step"], r["val_acc"], r["val_loss"]) for r in b]
    sa, sb = read_json(resumed / "summary.json"), read_json(full / "summary.json")
    for key in ("status", "steps", "epochs_completed", "best_val_acc", "best_epoch", "final_val_acc", "final_train_acc",
                "test_acc", "total_params"):
        assert sa[key] == sb[key], key


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path, uninterrupted: Path) -> None:
    run = tmp_path / "run"
    proc = start(run)
    wait_for_metrics(run, proc, lines=2)
    time.sleep(0.3)  # land somewhere in the middle of the next steps
    proc.kill()
    proc.wait()
    # everything on disk is whole: JSON parses, the checkpoint loads, no temp file masquerades as a result
    assert read_json(run / "summary.json")["status"] == "running"
    with np.load(run / "checkpoints" / "last.npz", allow_pickle=False) as ckpt:
        assert len(ckpt.files) > 10
    assert all(r["step"] % 8 == 0 for r in read_jsonl(run / "metrics.jsonl"))
    # what a kill during a checkpoint write leaves: the resumed run removes it
    (run / "checkpoints" / ".last.npz.4242.tmp").write_bytes(b"half a checkpoint")
    regbench("train", *SMALL, "trainer.resume=true", f"hydra.run.dir={run}")
    assert_same_run(run, uninterrupted)
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.slow
def test_signal_checkpoints_marks_interrupted_and_resumes(tmp_path: Path, uninterrupted: Path, signum: int,
                                                          code: int) -> None:
    run = tmp_path / "run"
    proc = start(run)
    wait_for_metrics(run, proc)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, out
    assert "Traceback" not in out
    summary = read_json(run / "summary.json")
    assert summary["status"] == "interrupted" and "trainer.resume=true" in summary["error"]
    regbench("train", *SMALL, "trainer.resume=true", f"hydra.run.dir={run}")
    assert_same_run(run, uninterrupted)


@pytest.mark.slow
def test_divergence_stops_the_run_keeps_checkpoints_and_the_sweep_goes_on(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = regbench("train", "-m", *SMALL, "optim=sgd", "optim.lr=1e6,0.01", "trainer.epochs=1",
                    f"hydra.sweep.dir={sweep}", check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    diverged, fine = read_json(sweep / "0" / "summary.json"), read_json(sweep / "1" / "summary.json")
    assert diverged["status"] == "diverged"
    assert re.fullmatch(r"training loss became (nan|-?inf) by step \d+", diverged["error"]), diverged["error"]
    assert fine["status"] == "completed"


@pytest.mark.parametrize("override, message", [
    ("reg=dropout reg.p=1.5", "reg.p=1.5 is invalid"),
    ("optim.lr=0", "optim.lr=0 is invalid"),
    ("trainer.batch_size=0", "trainer.batch_size=0 is invalid"),
    ("trainer.epochs=-1", "trainer.epochs=-1 is invalid"),
    ("reg=dropblock reg.dropblock.keep_prob=0", "reg.dropblock.keep_prob=0 is invalid"),
    ("reg=dropblock reg.dropblock.block_size=0", "reg.dropblock.block_size=0 is invalid"),
    ("model=lenet5 dataset.image_size=28", "needs image_size >= 32"),
    ("trainer.epoch=3", "trainer has: epochs"),
    ("act=swish", "choose one of: dyrelu_a"),
    ("trainer.device=tpu", "one of auto, cpu, gpu"),
    ("trainer.log_every=0", "trainer.log_every=0 is invalid: it must be an integer >= 1"),
    ("trainer.stop_check_s=-1", "trainer.stop_check_s=-1 is invalid: it must be a number >= 0 (seconds)"),
    ("dataset.limit.train=-1", "dataset.limit.train=-1 is invalid: it must be null or an integer >= 1"),
    ("dataset.limit.val=-5", "dataset.limit.val=-5 is invalid"),
    ("dataset=mnist_nndl dataset.limit.test=-2", "dataset.limit.test=-2 is invalid"),
    ("seed=-1", "seed=-1 is invalid: it must be an integer >= 0"),  # named once, not through the seeds following it
    ("seeds.order=1.5", "seeds.order=1.5 is invalid: it must be an integer >= 0"),
    ("dataset.split_seed=-3", "dataset.split_seed=-3 is invalid"),
])
def test_bad_config_is_one_line_exit_2_before_any_work(tmp_path: Path, override: str, message: str) -> None:
    proc = regbench("train", *override.split(), cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_truncated_checkpoint_is_named_and_nothing_is_lost(tmp_path: Path) -> None:
    run = tmp_path / "run"
    longer = "trainer.epochs=100"  # still training when the kill comes, however late a loaded machine delivers it
    proc = start(run, longer)
    wait_for_metrics(run, proc)
    proc.kill()
    proc.wait()
    assert read_json(run / "summary.json")["status"] == "running"
    last = run / "checkpoints" / "last.npz"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    # a kill inside a write (summary.json, curves.png, a checkpoint) leaves its temporary file, which the next run
    # removes: not a result, and whether there is one depends on where the kill landed
    kept = {p: p.read_bytes() for p in run.rglob("*")
            if p.is_file() and p.name != "train.log" and not p.name.endswith(".tmp")}
    again = regbench("train", *SMALL, longer, "trainer.resume=true", f"hydra.run.dir={run}", check=False)
    assert again.returncode == 2
    out = again.stdout + again.stderr
    assert "last.npz" in out and "corrupt" in out and "Traceback" not in out
    for path, data in kept.items():
        if path.name not in ("summary.json", "config.yaml", "hydra.yaml", "overrides.yaml"):
            assert path.read_bytes() == data, path
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_booby_trapped_cifar_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    import io
    import pickle
    import tarfile

    marker = tmp_path / "pwned"

    class Trap:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    blob = pickle.dumps({b"data": Trap(), b"labels": [0]})
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    run = tmp_path / "run"
    proc = regbench("train", "model=mynet", "dataset=cifar10", f"dataset.data_file={tarball}", f"hydra.run.dir={run}",
                    check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert "cifar-10-python.tar.gz" in proc.stdout + proc.stderr
    assert not marker.exists()
    assert read_json(run / "summary.json")["status"] == "failed"


# 2 epochs of 8 steps, evaluated every 4: a sweep of two such jobs, small enough to run several times
TINY = ("model=mynet", "dataset=synthetic", "dataset.train_size=256", "dataset.test_size=64", "trainer.epochs=2",
        "trainer.batch_size=32", "trainer.eval_every_steps=4", "trainer.log_every=4")


@pytest.fixture(scope="module")
def job_1(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """An uninterrupted run of the second job of the sweeps below (seed 1), per optimizer."""
    runs: dict[str, Path] = {}

    def run(optim: str) -> Path:
        if optim not in runs:
            runs[optim] = tmp_path_factory.mktemp("job_1") / optim
            regbench("train", *TINY, f"optim={optim}", "seed=1", f"hydra.run.dir={runs[optim]}")
        return runs[optim]

    return run


def kill_after_first_evaluation(args: list[str], run: Path) -> None:
    """Start `regbench train ARGS`, SIGKILL it as soon as `run` has its first metrics line (mid-epoch)."""
    proc = subprocess.Popen([sys.executable, "-m", "regbench", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_for_metrics(run, proc, lines=1)
    proc.kill()
    proc.wait()
    assert read_json(run / "summary.json")["status"] == "running"
    assert read_jsonl(run / "metrics.jsonl")[-1]["step"] < 16


@pytest.mark.parametrize("optim", ["adam", "momentum"])
@pytest.mark.slow
def test_sweep_killed_mid_job_resumes_every_job_exactly(tmp_path: Path, job_1: Callable[[str], Path],
                                                        optim: str) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, f"optim={optim}", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    kill_after_first_evaluation(args, sweep / "1")
    assert read_json(sweep / "0" / "summary.json")["status"] == "completed"
    first = (sweep / "0" / "checkpoints" / "last.npz").stat().st_mtime_ns
    proc = regbench("train", *args, "trainer.resume=true")
    out = proc.stdout + proc.stderr
    assert "already completed" in out and "resumed from" in out
    assert (sweep / "0" / "checkpoints" / "last.npz").stat().st_mtime_ns == first
    # the resumed job continued with its optimizer's state, in a process that built other models first
    assert_same_run(sweep / "1", job_1(optim))


@pytest.mark.slow
def test_run_resumes_in_a_process_that_built_other_models_first(tmp_path: Path, job_1: Callable[[str], Path]) -> None:
    sweep = tmp_path / "sweep"
    kill_after_first_evaluation([*TINY, "optim=adam", "seed=1", f"hydra.run.dir={sweep / '1'}"], sweep / "1")
    # a sweep whose job 0 (another seed) trains from scratch, then job 1 resumes the killed run
    regbench("train", "-m", *TINY, "optim=adam", "seed=0,1", "trainer.resume=true", f"hydra.sweep.dir={sweep}")
    assert read_json(sweep / "0" / "summary.json")["status"] == "completed"
    assert_same_run(sweep / "1", job_1("adam"))


@pytest.mark.slow
def test_full_disk_ends_in_one_line_keeps_the_last_checkpoint_and_resumes(tmp_path: Path, uninterrupted: Path) -> None:
    # a file-size limit on the run process (no root needed): a checkpoint with one evaluation in its history fits,
    # one with two (about a kilobyte more) does not
    first = tmp_path / "first"
    regbench("train", *SMALL, "trainer.max_steps=8", f"hydra.run.dir={first}")
    limit = (first / "checkpoints" / "last.npz").stat().st_size + 400

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "regbench", "train", *SMALL, f"hydra.run.dir={run}"],
                          preexec_fn=limited, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    (line,) = [line for line in out.splitlines() if "error" in line.lower()]
    assert re.search(r"cannot write \S+/checkpoints/(best|last)\.npz: File too large \(EFBIG\)", line), line
    assert "trainer.resume=true" in line and "Traceback" not in out
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    summary = read_json(run / "summary.json")
    assert summary["status"] == "failed" and "File too large" in summary["error"] and summary["steps"] == 8
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [8]
    with np.load(run / "checkpoints" / "last.npz", allow_pickle=False) as ckpt:
        assert '"step": 8' in str(ckpt["__meta__"])
    # space freed: the run continues from its last checkpoint as if nothing had happened
    regbench("train", *SMALL, "trainer.resume=true", f"hydra.run.dir={run}")
    assert_same_run(run, uninterrupted)


@pytest.mark.slow
def test_unwritable_summary_is_said_in_one_line(tmp_path: Path) -> None:
    # 300 bytes: too little for summary.json (Hydra's .hydra/ copy is off, train.log is cut short). Python's own
    # .pyc writes come before regbench can ignore SIGXFSZ, so the child ignores it from the start here.
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "regbench", "train", *SMALL, f"hydra.run.dir={run}",
                           "hydra.output_subdir=null"], preexec_fn=limited, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out
    (line,) = [line for line in out.splitlines() if "error" in line.lower()]
    assert f"cannot write {run / 'summary.json'}: File too large (EFBIG)" in line
    assert sorted(p.name for p in run.iterdir()) == ["train.log"]


@pytest.mark.parametrize("command, name", [("table", "table.md"), ("plot", "plot.png")])
def test_report_that_cannot_be_written_keeps_the_previous_one(tmp_path: Path, uninterrupted: Path, command: str,
                                                              name: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    (run / name).write_text("the previous report\n")

    def limited() -> None:  # 64 bytes: less than any table or plot
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    proc = subprocess.run([sys.executable, "-m", "regbench", command, str(run)], preexec_fn=limited,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr == f"regbench: error: cannot write {run / name}: File too large (EFBIG)\n"
    assert (run / name).read_text() == "the previous report\n"
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


def test_every_file_regbench_writes_goes_through_the_atomic_helper() -> None:
    """Outside regbench/atomic_files.py, a write names a file object of atomic_write, never a path of its own."""
    savers = {"savefig", "save", "savez", "savez_compressed", "dump", "write", "writelines"}  # given a file object
    forbidden = {"os.replace", "os.rename", "shutil.copy", "shutil.copyfile", "shutil.copy2", "shutil.move"}
    # writers that only take a path, which regbench points at a scratch folder (export: files.staged_files)
    by_path = {"paddle.jit.save"}
    offenders = []
    for path in sorted((Path(__file__).resolve().parents[1] / "regbench").rglob("*.py")):
        if path.name == "atomic_files.py":
            continue
        tree = ast.parse(path.read_text())
        atomic = {item.optional_vars.id for node in ast.walk(tree) if isinstance(node, ast.With)
                  for item in node.items if isinstance(item.context_expr, ast.Call)
                  and ast.unparse(item.context_expr.func).endswith("atomic_write")
                  and isinstance(item.optional_vars, ast.Name)}
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            func = ast.unparse(call.func)
            method = func.rpartition(".")[2] if isinstance(call.func, ast.Attribute) else None
            receiver = [call.func.value] if isinstance(call.func, ast.Attribute) else []
            names = {a.id for a in [*receiver, *call.args, *(k.value for k in call.keywords)] if isinstance(a, ast.Name)}
            mode = next((a.value for a in call.args[1:2] if isinstance(a, ast.Constant)), "r")
            if func in by_path:
                continue
            if (func in forbidden or method in ("write_text", "write_bytes")
                    or (method or func) in savers and not names & atomic
                    or func == "open" and isinstance(mode, str) and set(mode) & set("wax+")):
                offenders.append(f"{path.name}:{call.lineno}: {ast.unparse(call)[:80]}")
    assert not offenders, "\n".join(offenders)
