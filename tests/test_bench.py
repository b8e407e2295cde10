"""`regbench bench` end to end, and the trainer's speed switches on the CPU (each trains, or says why it cannot)."""
from __future__ import annotations

import json
import os
import logging
import re
import time
from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
from omegaconf import OmegaConf

from conftest import read_json, regbench
from regbench.bench.table import ratio_table
from regbench.train import process_env
from regbench.train.speed import compile_model, fast_conv_bias

PADDLE_2 = int(paddle.__version__.split(".")[0]) == 2  # compile falls back to eager there

KEYS = {"model", "act", "reg", "dataset", "device", "batch_size", "amp", "compile", "threads", "paddle_version",
        "train_img_per_s", "eval_img_per_s", "step_ms", "step_ms_iqr", "data_ms_per_batch", "data_share_of_step",
        "data_wait_share", "peak_mem_mb", "max_rss_mb", "steps", "warmup", "overrides"}
SMALL = ("dataset=synthetic", "dataset.train_size=256", "dataset.test_size=64", "trainer.batch_size=32",
         "bench.steps=3", "bench.warmup=1", "bench.eval_repeats=1")


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_bench_prints_one_json_line_with_every_figure_and_writes_no_run_folder(tmp_path: Path) -> None:
    start = time.perf_counter()
    proc = regbench("bench", "model=mynet", "reg=dropblock", "reg.dropblock.block_size=3", *SMALL, "bench.steps=10",
                    "bench.eval_repeats=3", cwd=tmp_path)
    wall_s = time.perf_counter() - start
    (row,) = json_lines(proc.stdout)
    assert set(row) == KEYS
    assert (row["model"], row["act"], row["reg"], row["dataset"]) == ("mynet", "relu", "dropblock", "synthetic")
    assert (row["device"], row["batch_size"], row["amp"], row["peak_mem_mb"]) == ("cpu", 32, "off", None)
    assert row["paddle_version"] == paddle.__version__ and row["steps"] == 10 and row["warmup"] == 1
    q1, q3 = row["step_ms_iqr"]
    assert 0 < q1 <= row["step_ms"] <= q3
    # checked against independent facts, not the code's own formulas: half of the 10 timed steps took at least
    # the median, and the process ran all of them; a step produces its batch, then trains on it; evaluating
    # (forward only) is faster per image than training (forward, backward, update)
    assert 5 * row["step_ms"] / 1000 < wall_s
    assert 32 * 5 / row["train_img_per_s"] < wall_s
    assert 0 < row["data_ms_per_batch"] < row["step_ms"] and 0 < row["data_share_of_step"] < 1
    assert 0 < row["data_wait_share"] < 1
    assert row["train_img_per_s"] < row["eval_img_per_s"]
    # the memory the process holds: Paddle alone takes more than 100 MB, and less than this machine has
    assert 100 < row["max_rss_mb"] < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    # Hydra's folder holds its log only: no .hydra copy, no run files
    files = [p.relative_to(tmp_path) for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
    assert [f.name for f in files] == ["bench.log"] and files[0].parts[:2] == ("outputs", "bench")


def test_bench_sweep_prints_a_ratio_table_of_its_combinations(tmp_path: Path) -> None:
    proc = regbench("bench", "-m", "model=lenet5", "reg=none,dropout", *SMALL, cwd=tmp_path)
    rows = json_lines(proc.stdout)
    assert [r["reg"] for r in rows] == ["none", "dropout"]
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 4 and "× step" in table[0] and "× eval" in table[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [c[0] for c in cells] == ["reg=none", "reg=dropout"]
    assert cells[0][3] == "1.00" and cells[0][5] == "1.00"
    assert float(cells[1][3]) == pytest.approx(rows[1]["step_ms"] / rows[0]["step_ms"], abs=0.006)
    assert float(cells[1][5]) == pytest.approx(rows[0]["eval_img_per_s"] / rows[1]["eval_img_per_s"], abs=0.006)
    assert not list((tmp_path / "outputs").rglob("table.md"))  # the training sweep report is not made for bench


def test_ratio_table_labels_rows_by_the_overrides_that_differ() -> None:
    def row(overrides: list[str], step_ms: float, eval_img_per_s: float) -> dict:
        return dict(model="mynet", overrides=overrides, step_ms=step_ms, train_img_per_s=64000 / step_ms,
                    eval_img_per_s=eval_img_per_s, data_ms_per_batch=1.0, data_share_of_step=1.0 / step_ms,
                    peak_mem_mb=None, max_rss_mb=500.0)

    table = ratio_table([row(["model=mynet", "trainer.threads=1"], 80.0, 1000.0),
                         row(["model=mynet", "trainer.threads=2"], 60.0, 1250.0)]).splitlines()
    assert table[2].startswith("| trainer.threads=1 | 800 | 80.0 | 1.00 | 1000 | 1.00 | 1.00 | 1.2 | 500.0 |")
    assert table[3].startswith("| trainer.threads=2 | 1067 | 60.0 | 0.75 | 1250 | 0.80 | 1.00 | 1.7 | 500.0 |")


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
@pytest.mark.slow
def test_cpu_training_with_every_gpu_switch_on_says_so_and_completes(tmp_path: Path, amp: str) -> None:
    run = tmp_path / "run"
    # MKL_VERBOSE makes MKL print every GEMM with the number of threads it used
    proc = regbench("train", "model=mynet", "reg=dropblock", "reg.dropblock.block_size=3", "dataset=synthetic",
                    "dataset.train_size=128", "dataset.test_size=32", "trainer.batch_size=32", "trainer.max_steps=4",
                    f"trainer.amp={amp}", "trainer.compile=true", "trainer.cudnn_benchmark=true",
                    "trainer.deterministic=true", "trainer.tf32=false", "trainer.cudnn_workspace_mb=1024",
                    "trainer.threads=2", f"hydra.run.dir={run}", cwd=tmp_path, env={"MKL_VERBOSE": "1"})
    log = (run / "train.log").read_text()
    assert f"trainer.amp={amp} needs a GPU: computing in float32" in log
    assert ("trainer.compile needs Paddle 3" if PADDLE_2 else
            "trainer.compile: DropBlock (features.9) runs eagerly: it follows the training progress") in log
    threads = set(re.findall(r"NThr:(\d+)", proc.stdout))
    assert threads == {"2"}
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["steps"] == 4


@pytest.mark.slow
def test_threads_switch_sets_mkl_threads(tmp_path: Path) -> None:
    proc = regbench("train", "model=lenet5", "dataset=synthetic", "dataset.train_size=64", "dataset.test_size=32",
                    "trainer.batch_size=32", "trainer.max_steps=1", "trainer.threads=1",
                    f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, env={"MKL_VERBOSE": "1"})
    assert set(re.findall(r"NThr:(\d+)", proc.stdout)) == {"1"}


def test_old_boolean_amp_is_refused_with_the_modes(tmp_path: Path) -> None:
    proc = regbench("train", "trainer.amp=true", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "trainer.amp=True is invalid: it must be one of off, fp16, bf16" in proc.stderr
    assert not (tmp_path / "outputs").exists()


def _mynet() -> nn.Layer:
    from regbench.config import compose
    from regbench.models import build_model

    cfg = compose(["model=mynet", "dataset=synthetic"])
    paddle.seed(7)
    return build_model(cfg.model, cfg.act, cfg.reg)


def test_fast_conv_bias_gives_the_same_outputs_and_gradients() -> None:
    plain, fast = _mynet(), _mynet()
    assert fast_conv_bias(fast) == 4
    assert list(fast.state_dict()) == list(plain.state_dict())
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype("float32"))
    labels = paddle.to_tensor(np.arange(8) % 10)
    outputs = []
    for model in (plain, fast):
        out = model(x)
        F.cross_entropy(out, labels).backward()
        outputs.append((out.numpy(), {p.name: p.grad.numpy() for p in model.parameters()}))
    (out_a, grads_a), (out_b, grads_b) = outputs
    np.testing.assert_array_equal(out_a, out_b)
    for (_, ga), (_, gb) in zip(sorted(grads_a.items()), sorted(grads_b.items())):
        np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-7)


class PythonCount(nn.Layer):
    """Scales by the number of positive inputs, counted in Python: fine eagerly, impossible in a static graph."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * len([v for v in x.numpy().ravel() if v > 0])


@pytest.mark.skipif(PADDLE_2, reason="Paddle 2.x: compile falls back to eager (next test)")
def test_compile_converts_what_it_can_and_names_the_layer_it_cannot(caplog: pytest.LogCaptureFixture) -> None:
    paddle.seed(3)
    model = nn.Sequential(nn.Conv2D(3, 4, 3), nn.BatchNorm2D(4), nn.ReLU(), PythonCount(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 5))
    x = paddle.to_tensor(np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype("float32"))
    model.eval()
    expected = model(x).numpy()
    statistics = model[1]._mean.numpy().copy()
    model.train()
    with caplog.at_level(logging.WARNING, logger="regbench"):
        eager = compile_model(model, x)
    assert eager == ["3"]
    # the reason is Paddle's own message, which differs between versions
    assert "trainer.compile: PythonCount (3) runs eagerly: it does not convert: " in caplog.text
    np.testing.assert_array_equal(model[1]._mean.numpy(), statistics)  # trial runs left no trace
    model.eval()
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert type(model[0].forward).__name__.endswith("StaticFunction")  # converted in place


@pytest.mark.skipif(not PADDLE_2, reason="Paddle 3 converts (previous test)")
def test_compile_on_paddle_2_trains_eagerly_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    model = nn.Sequential(nn.Conv2D(3, 4, 3), nn.ReLU())
    forward = model[0].forward
    with caplog.at_level(logging.WARNING, logger="regbench"):
        assert compile_model(model, paddle.ones([1, 3, 8, 8])) == ["model"]
    assert "trainer.compile needs Paddle 3" in caplog.text and model[0].forward == forward


CPUINFO = "processor\t: {n}\nvendor_id\t: {vendor}\ncpu family\t: 25\nflags\t\t: fpu sse2 {flags} fma\n\n"


@pytest.mark.parametrize("vendor, flags, switch, expected", [
    ("AuthenticAMD", "avx avx2", True, "5"),
    ("AuthenticAMD", "avx avx2", False, None),
    ("AuthenticAMD", "avx", True, None),
    ("GenuineIntel", "avx avx2 avx512f", True, None),
])
def test_mkl_amd_avx2_sets_mkl_cpu_type_only_on_amd_with_avx2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vendor: str, flags: str, switch: bool,
        expected: str | None) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("".join(CPUINFO.format(n=n, vendor=vendor, flags=flags) for n in range(2)))
    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    process_env.prepare(OmegaConf.create({"mkl_amd_avx2": switch}), cpuinfo)
    assert os.environ.get("MKL_DEBUG_CPU_TYPE") == expected


def test_mkl_amd_avx2_keeps_a_users_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.format(n=0, vendor="AuthenticAMD", flags="avx avx2"))
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "4")
    process_env.prepare(OmegaConf.create({"mkl_amd_avx2": True}), cpuinfo)
    assert os.environ["MKL_DEBUG_CPU_TYPE"] == "4"
