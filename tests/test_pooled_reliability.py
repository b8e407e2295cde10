"""scripts/pooled_reliability.py: one reliability diagram per table row, its seeds' predictions pooled."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import ece_by_loop, run_folders
from regbench.reproduce import sweep_overrides

SCRIPT = Path(__file__).parents[1] / "scripts" / "pooled_reliability.py"


def test_each_row_pools_its_seeds_predictions(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    folders = run_folders(sweep, sweep_overrides("league_cpu", "quick", ["seed=0,1"]))
    rng = np.random.default_rng(0)
    pooled: dict[int, tuple[list, list]] = {}
    for i, folder in enumerate(folders):
        summary = {"status": "completed", "seed": i % 2, "test_acc": 0.5, "best_val_acc": 0.5}
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1.0, "val_acc": 0.5}) + "\n")
        logits = rng.normal(scale=1 + i, size=(40, 10))
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        labels = rng.integers(0, 10, size=40)
        np.savez(folder / "probs_test_best.npz", probs=probs.astype(np.float32), labels=labels)
        pooled.setdefault(i // 2, ([], []))[0].extend(probs.astype(np.float32))
        pooled[i // 2][1].extend(labels)
    out = tmp_path / "figures"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(sweep), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    labels = ["none", "dropout", "dropout2d", "dropblock", "cutout", "mixup", "cutmix"]
    assert [line.split(":")[0] for line in lines] == labels
    for row, line in enumerate(lines):
        probs, truth = pooled[row]
        assert f"ECE {ece_by_loop(probs, truth):.4f}," in line and "n=80" in line
        assert (out / f"reliability_{labels[row]}.png").stat().st_size > 0


def test_a_run_without_saved_probabilities_says_which_command_writes_them(tmp_path: Path) -> None:
    [folder] = run_folders(tmp_path, ["reg=none"])
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "seed": 0, "test_acc": 0.5}))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), str(tmp_path / "out")], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "probs_test_best.npz is missing: run `regbench eval" in proc.stderr
    assert "Traceback" not in proc.stderr
