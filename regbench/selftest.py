"""`regbench selftest`: every path this machine has, each checked by real `regbench` runs in subprocesses.

Each check prints one JSON line on stdout ({"check", "status": passed | failed | not available, "reason", "seconds"});
a table of them follows on stderr. The runs are tiny (synthetic data, a few steps) and live in a scratch folder.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from regbench import run_dir
from regbench.config import CONF_DIR
from regbench.errors import UserError

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
ACTS = sorted(p.stem for p in (CONF_DIR / "act").glob("*.yaml"))
AMP_MODES = ("fp16", "bf16")
FORMATS = ("paddle", "onnx")
# every model × act: 2 steps of 4 synthetic 32×32 images (LeNet-5's least), one evaluation
TINY = ("dataset=synthetic", "dataset.train_size=24", "dataset.test_size=4", "trainer.batch_size=4",
        "trainer.max_steps=2", "trainer.eval_every_steps=2")
# compile converts layer by layer, in training and evaluation mode, and compares each with its eager twin
COMPILED = ("model=mynet", "act=relu")
# resume: 32 steps evaluated every 8, killed after the first evaluation; deterministic cuDNN on a GPU
RESUMED = ("model=mynet", "dataset=synthetic", "dataset.train_size=576", "dataset.test_size=32",
           "trainer.batch_size=16", "trainer.epochs=1", "trainer.eval_every_steps=8", "trainer.deterministic=true")
TIMING = ("_time_s", "_per_s")  # metrics.jsonl keys that measure the clock, not the training
FLOAT32 = ("lr",)  # computed in float64 by the schedule, used in float32 by the optimizer
TIMEOUT = 1800  # seconds for one regbench process: a hung GPU fails its check instead of the whole selftest


@dataclass
class Check:
    check: str
    status: str  # passed | failed | not available
    reason: str
    seconds: float


@dataclass
class Machine:
    """What this machine can run, as the trainer itself decides it."""
    device: str
    gpus: int
    amp: dict[str, str | None]  # mode -> why it is not available (None: available)
    compile: str | None  # why trainer.compile is not available (None: available)
    export: str | None  # why ONNX export is not available (None: available)
    about: str  # versions, for reports


def machine() -> Machine:
    import importlib.metadata
    import importlib.util
    import platform

    import paddle

    from regbench.device import amp_unavailable_on, select_device
    from regbench.train.speed import compile_unavailable

    device = select_device("auto")
    gpus = paddle.device.cuda.device_count() if device == "gpu" else 0
    missing = [m for m in ("paddle2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    cuda = f"CUDA build, cuDNN {paddle.get_cudnn_version()}" if paddle.is_compiled_with_cuda() else "CPU build"
    gpu_names = ", ".join(paddle.device.cuda.get_device_name(i) for i in range(gpus))
    try:
        version = importlib.metadata.version("regbench")
    except importlib.metadata.PackageNotFoundError:  # a source checkout on PYTHONPATH
        version = "(not installed)"
    about = (f"regbench {version}, Paddle {paddle.__version__} ({cuda}), "
             f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, device {device}"
             + (f": {gpus} GPU(s): {gpu_names}" if gpus else ""))
    return Machine(device=device, gpus=gpus, amp={m: amp_unavailable_on(m, device) for m in AMP_MODES},
                   compile=compile_unavailable(),
                   export=f"{' and '.join(missing)} not installed: pip install 'regbench[export]'" if missing else None,
                   about=about)


def planned(m: Machine) -> list[str]:
    """Every check's name, in the order they run."""
    names = [f"train/fp32/{model}/{act}" for model, act in product(MODELS, ACTS)]
    for mode in AMP_MODES:
        names += [f"train/{mode}/{model}/{act}" for model, act in product(MODELS, ACTS)] if m.amp[mode] is None \
            else [f"train/{mode}"]
    return [*names, "compile", "resume/fp32", *(f"resume/{mode}" for mode in AMP_MODES), "data-parallel",
            *(f"export/{fmt}" for fmt in FORMATS)]


def select(names: list[str], only: str | None) -> list[str]:
    """The checks `only` names (comma-separated names or their leading parts, e.g. train/fp32,resume); all without."""
    if not only:
        return names
    wanted = [w.strip().strip("/") for w in only.split(",") if w.strip()]
    unknown = [w for w in wanted if not any(n == w or n.startswith(w + "/") for n in names)]
    if unknown or not wanted:
        raise UserError(f"--only {only}: no check is named {', '.join(unknown) or 'nothing'}; choose names or "
                        f"their leading parts among: {', '.join(names)}")
    return [n for n in names if any(n == w or n.startswith(w + "/") for w in wanted)]


class Runner:
    """Runs `regbench` in subprocesses inside one scratch folder."""

    def __init__(self, work: Path, m: Machine, export_tolerance: float | None) -> None:
        self.work, self.machine, self.export_tolerance = work, m, export_tolerance
        self.device = ("trainer.device=gpu",) if m.device == "gpu" else ("trainer.device=cpu",)
        self._exportable: Path | None = None

    def regbench(self, *args: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([sys.executable, "-m", "regbench", *args], cwd=self.work, capture_output=True,
                                  text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 1, "", f"regbench {args[0]} did not end within {TIMEOUT} s")

    def train(self, run: Path, *overrides: str) -> subprocess.CompletedProcess:
        return self.regbench("train", *self.device, *overrides, f"hydra.run.dir={run}")

    def grid(self, mode: str, names: list[str]) -> Iterator[Check]:
        """train/MODE/MODEL/ACT: one sweep over the named models × acts, a check per job."""
        pairs = [tuple(n.split("/")[2:]) for n in names]
        models = sorted({p[0] for p in pairs})
        acts = sorted({p[1] for p in pairs})
        sweep = self.work / f"train-{mode}"
        start = time.time()
        proc = self.regbench("train", "-m", f"model={','.join(models)}", f"act={','.join(acts)}", *TINY, *self.device,
                             f"trainer.amp={'off' if mode == 'fp32' else mode}", f"hydra.sweep.dir={sweep}")
        jobs = list(product(models, acts))
        for num, (model, act) in enumerate(jobs):
            if (model, act) not in pairs:
                continue
            job = sweep / str(num)
            summary = run_dir.read_json(job / run_dir.SUMMARY) or {}
            seconds = summary.get("wall_time_s") or (time.time() - start) / len(jobs)
            name = f"train/{mode}/{model}/{act}"
            if summary.get("status") != "completed":
                yield Check(name, "failed", summary.get("error") or error_line(proc), seconds)
            elif mode != "fp32" and "computing in float32" in _read_text(job / run_dir.TRAIN_LOG):
                yield Check(name, "failed", f"trained in float32, not {mode} ({run_dir.TRAIN_LOG} says why)", seconds)
            else:
                yield Check(name, "passed", f"{summary['steps']} steps, final train loss "
                            f"{_last_row(job).get('train_loss', float('nan')):.4g}", seconds)

    def compile(self) -> tuple[str, str]:
        run = self.work / "compile"
        proc = self.train(run, *COMPILED, *TINY, "trainer.compile=true")
        summary = run_dir.read_json(run / run_dir.SUMMARY) or {}
        if proc.returncode != 0 or summary.get("status") != "completed":
            return "failed", summary.get("error") or error_line(proc)
        eager = [line.split("trainer.compile: ", 1)[1] for line in _read_text(run / run_dir.TRAIN_LOG).splitlines()
                 if "trainer.compile: " in line]
        return "passed", f"{' '.join(COMPILED)} trained {summary['steps']} steps compiled" + (
            f"; eager: {'; '.join(eager)}" if eager else "; every layer converted")

    def resume(self, mode: str) -> tuple[str, str]:
        """Straight vs SIGKILLed mid-run and resumed: the same metrics rows and the same last.npz, bit for bit."""
        overrides = (*RESUMED, f"trainer.amp={'off' if mode == 'fp32' else mode}")
        straight, killed = self.work / f"resume-{mode}-straight", self.work / f"resume-{mode}-killed"
        proc = self.train(straight, *overrides)
        if proc.returncode != 0:
            return "failed", f"the uninterrupted run failed: {error_line(proc)}"
        if mode == "fp32":
            self._exportable = straight
        output = self.work / f"resume-{mode}-killed.out"  # a file, not a pipe that could fill and block the run
        with output.open("w") as out:
            child = subprocess.Popen([sys.executable, "-m", "regbench", "train", *self.device, *overrides,
                                      f"hydra.run.dir={killed}"], cwd=self.work, stdout=out, stderr=out)
        deadline = time.time() + TIMEOUT
        while not _read_text(killed / run_dir.METRICS).endswith("\n") and child.poll() is None \
                and time.time() < deadline:
            time.sleep(0.01)
        child.kill()  # SIGKILL: no handler runs, no checkpoint is written on the way out
        child.wait()
        if child.returncode != -9:
            return "failed", f"the run to kill ended by itself (exit {child.returncode}) before the kill: " + (
                error_line(subprocess.CompletedProcess([], child.returncode, "", _read_text(output))))
        if not _read_text(killed / run_dir.METRICS):
            return "failed", f"the run to kill wrote no evaluation within {TIMEOUT} s"
        at = _last_row(killed).get("step")
        proc = self.train(killed, *overrides, "trainer.resume=true")
        if proc.returncode != 0:
            return "failed", f"the resumed run failed: {error_line(proc)}"
        if "resumed from" not in proc.stdout + proc.stderr:
            return "failed", "trainer.resume=true started from scratch instead of the killed run's checkpoint"
        differs = compare_runs(killed, straight)
        if differs:
            return "failed", f"killed after step {at} and resumed: {differs}"
        rows = len(run_dir.read_metrics(straight / run_dir.METRICS))
        return "passed", (f"killed (SIGKILL) after step {at} and resumed: {rows} metrics rows and "
                          f"{run_dir.checkpoint_file(run_dir.LAST)} equal an uninterrupted run's exactly")

    def data_parallel(self) -> tuple[str, str]:
        """All visible GPUs through paddle.distributed.launch; the saved best.npz scores what the run recorded."""
        run = self.work / "data-parallel"
        script = shutil.which("regbench", path=str(Path(sys.executable).parent)) or shutil.which("regbench")
        if script is None:
            return "failed", "paddle.distributed.launch needs the regbench console script: pip install regbench"
        devices = ",".join(str(i) for i in range(self.machine.gpus))
        try:
            proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--devices", devices,
                                   "--log_dir", str(self.work / "data-parallel-logs"), script, "train",
                                   *self.device, *RESUMED, f"hydra.run.dir={run}"], cwd=self.work,
                                  capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return "failed", f"paddle.distributed.launch did not end within {TIMEOUT} s"
        summary = run_dir.read_json(run / run_dir.SUMMARY) or {}
        if proc.returncode != 0 or summary.get("status") != "completed":
            logs = "".join(_read_text(p) for p in sorted((self.work / "data-parallel-logs").glob("workerlog.*")))
            return "failed", summary.get("error") or error_line(subprocess.CompletedProcess([], 1, "", proc.stderr + logs))
        if summary.get("world_size") != self.machine.gpus:
            return "failed", f"trained on {summary.get('world_size')} rank(s), not {self.machine.gpus}"
        proc = self.regbench("eval", str(run), "--split", "val", "--checkpoint", run_dir.BEST)
        best = run_dir.checkpoint(run, run_dir.BEST).name
        if proc.returncode != 0:
            return "failed", f"regbench eval of its {best} failed: {error_line(proc)}"
        scored = json.loads(proc.stdout.splitlines()[-1])["accuracy"]
        if scored != summary["best_val_acc"]:
            return "failed", (f"best_val_acc {summary['best_val_acc']} recorded, but its {best} scores {scored} on "
                              "val: the ranks evaluated with different batch-norm statistics")
        return "passed", (f"{self.machine.gpus} ranks trained {summary['steps']} steps; {best} scores the recorded "
                          f"best_val_acc {scored} on val")

    def export(self, fmt: str) -> tuple[str, str]:
        """`regbench export`, which compares the exported model's logits with the eager model's itself."""
        if self._exportable is None:
            self._exportable = self.work / "exportable"
            proc = self.train(self._exportable, "model=mynet", *TINY)
            if proc.returncode != 0:
                return "failed", f"training a run to export failed: {error_line(proc)}"
        tolerance = () if self.export_tolerance is None else ("--tolerance", str(self.export_tolerance))
        proc = self.regbench("export", str(self._exportable), "--format", fmt, "--output",
                             str(self.work / f"export-{fmt}"), *tolerance)
        if proc.returncode != 0:
            return "failed", error_line(proc)
        out = json.loads(proc.stdout.splitlines()[-1])
        return "passed", (f"max |Δlogits| {out['max_abs_diff']:.3g} against the eager model on "
                          f"{out['checked_images']} val images (tolerance {out['tolerance']:.3g})")


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line that says why a regbench process failed: its error line, else its last output line."""
    lines = [line.strip() for line in (proc.stderr or "").splitlines() + (proc.stdout or "").splitlines()
             if line.strip()]
    logged = [line.split("][ERROR] - ", 1)[1].removeprefix("failed: ") for line in lines if "][ERROR] - " in line]
    said = [line.removeprefix("regbench: error: ") for line in lines if line.startswith("regbench: error:")]
    raised = [line for line in lines if line.split(" ", 1)[0].endswith(("Error:", "Exception:"))]
    return (logged or said or raised or lines or [f"exit status {proc.returncode} without output"])[-1][:500]


def compare_runs(a: Path, b: Path) -> str | None:
    """What differs between two runs' metrics rows (clock figures aside) and last checkpoints; None: nothing."""
    rows = [[{k: np.float32(v) if k in FLOAT32 else v for k, v in row.items() if not k.endswith(TIMING)}
             for row in run_dir.read_metrics(run / run_dir.METRICS)] for run in (a, b)]
    if len(rows[0]) != len(rows[1]):
        return f"{len(rows[0])} metrics rows instead of {len(rows[1])}"
    for x, y in zip(*rows):
        keys = [k for k in y if x.get(k) != y[k]]
        if keys:
            return f"step {y.get('step')}: " + ", ".join(f"{k} {x.get(k)} instead of {y[k]}" for k in keys[:3])
    with np.load(run_dir.checkpoint(a, run_dir.LAST)) as ca, np.load(run_dir.checkpoint(b, run_dir.LAST)) as cb:
        names = sorted((set(ca.files) | set(cb.files)) - {"__meta__"})
        differ = [n for n in names if n not in ca.files or n not in cb.files or not np.array_equal(ca[n], cb[n])]
    if differ:
        return f"{len(differ)} of {len(names)} arrays of {run_dir.checkpoint_file(run_dir.LAST)} differ: {', '.join(differ[:3])}"
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _last_row(run: Path) -> dict[str, Any]:
    rows = run_dir.read_metrics(run / run_dir.METRICS)
    return rows[-1] if rows else {}


def run_checks(names: list[str], runner: Runner) -> Iterator[Check]:
    """Run the named checks in order."""
    m = runner.machine
    for mode in ("fp32", *AMP_MODES):
        grid = [n for n in names if n.startswith(f"train/{mode}/")]
        if grid:
            yield from runner.grid(mode, grid)
        if f"train/{mode}" in names:
            yield Check(f"train/{mode}", "not available", str(m.amp[mode]), 0.0)
    single: dict[str, tuple[str | None, Callable[[], tuple[str, str]]]] = {
        "compile": (m.compile, runner.compile),
        "resume/fp32": (None, lambda: runner.resume("fp32")),
        **{f"resume/{mode}": (m.amp[mode], lambda mode=mode: runner.resume(mode)) for mode in AMP_MODES},
        "data-parallel": (None if m.gpus >= 2 else f"needs two or more GPUs (this machine: {m.gpus})",
                          runner.data_parallel),
        "export/paddle": (None, lambda: runner.export("paddle")),
        "export/onnx": (m.export, lambda: runner.export("onnx")),
    }
    for name, (unavailable, check) in single.items():
        if name not in names:
            continue
        if unavailable is not None:
            yield Check(name, "not available", unavailable, 0.0)
            continue
        start = time.time()
        status, reason = check()
        yield Check(name, status, reason, time.time() - start)


def table(checks: list[Check], seconds: float) -> str:
    """The summary table of the checks."""
    width = max(len(c.check) for c in checks)
    lines = [f"{'check':<{width}}  {'status':<13}  {'seconds':>7}  reason"]
    lines += [f"{c.check:<{width}}  {c.status:<13}  {c.seconds:7.1f}  {c.reason}" for c in checks]
    counts = {s: sum(c.status == s for c in checks) for s in ("passed", "failed", "not available")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" in {seconds:.0f} s")
    return "\n".join(lines)


def selftest(only: str | None, keep: Path | None, export_tolerance: float | None) -> list[Check]:
    """Run the checks (every one, or those `only` names), print them, and return them."""
    start = time.time()
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise UserError(f"--keep {keep}: the folder is not empty; name a new or empty folder")
    m = machine()
    names = select(planned(m), only)
    print(m.about, file=sys.stderr, flush=True)
    work = keep or Path(tempfile.mkdtemp(prefix="regbench-selftest-"))
    work.mkdir(parents=True, exist_ok=True)
    checks: list[Check] = []
    try:
        for check in run_checks(names, Runner(work.resolve(), m, export_tolerance)):
            check.reason = " ".join(check.reason.split())  # one line
            check.seconds = round(check.seconds, 1)
            checks.append(check)
            print(json.dumps(asdict(check)), flush=True)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(checks, time.time() - start), file=sys.stderr, flush=True)
    if keep is not None:
        print(f"the runs are kept in {keep}", file=sys.stderr)
    return checks
