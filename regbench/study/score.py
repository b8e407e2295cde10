"""The scoring stage of a study: every completed run of a sweep scored as its article's `evaluate` section declares
(`regbench eval` on each split, the probabilities saved for the pooled reliability diagrams, corruptions and OOD on
the first split), runs already scored with the same arguments left alone; corrupted test sets generated once per
dataset and cached under outputs/."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from regbench.articles import Evaluate
from regbench.data import in_memory, load_splits
from regbench.data.corrupt_split import SOURCE, choose, write_corrupted
from regbench.inference.evaluate import arguments, evaluate_run
from regbench.inference.request import EvalRequest
from regbench.inference.trained_run import saved_config
from regbench.run_dir import SUMMARY, probs_npz, read_json, sweep_runs
from regbench.run_dir.evaluated import scored_before

CACHE = Path("outputs") / "corruptions"  # generated corrupted test sets, one folder per dataset identity


def generated_corruptions(run: Path, limit: int, note: Callable[[str], None]) -> Path:
    """The corrupted first `limit` test images of the run's dataset: generated once into a folder named after the
    dataset's config (its identity), reused when that folder is complete."""
    cfg = saved_config(run, [f"dataset.limit.test={limit}"])
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    digest = hashlib.sha256(json.dumps(dataset, sort_keys=True).encode()).hexdigest()[:12]
    name = (read_json(run / SUMMARY) or {}).get("dataset", "dataset")
    folder = CACHE / f"{name}-{limit}-{digest}"
    names = choose(None)
    done = read_json(folder / SOURCE)
    if done and set(done.get("corruptions", [])) >= set(names):
        return folder
    note(f"generating corrupted test images into {folder} (once for this dataset)")
    splits = load_splits(cfg.dataset)
    split_name, split = ("val", splits.val) if splits.test is None else ("test", splits.test)
    folder.mkdir(parents=True, exist_ok=True)
    write_corrupted(in_memory(split), folder, names, 0,
                    dict(dataset=name, split=split_name, n=len(split), limit=limit), note)
    return folder


def requests(evaluate: Evaluate, run: Path, corruptions: Path | None) -> list[EvalRequest]:
    """One `regbench eval` request per declared split, the analyses on the first."""
    ood = " ".join(evaluate.ood[0]) if evaluate.ood else None
    return [EvalRequest(checkpoint=evaluate.checkpoint, split=split,
                        save_probs=run / probs_npz(split, evaluate.checkpoint),
                        corruptions=corruptions if i == 0 else None, ood=ood if i == 0 else None)
            for i, split in enumerate(evaluate.splits)]


def score_sweep(sweep: Path, evaluate: Evaluate, note: Callable[[str], None],
                progress: Callable[[int, int, Path], None], jobs: int = 1) -> int:
    """Score every completed run of `sweep` as `evaluate` declares, up to `jobs` runs at once (each process on a core
    of its own, one thread); `progress` is told as each run is done. Returns how many scorings ran."""
    runs = [r for r in sweep_runs(sweep) or [] if (read_json(r / SUMMARY) or {}).get("status") == "completed"]
    folders: dict[str, Path] = {}
    work: list[tuple[Path, list[EvalRequest]]] = []
    for run in runs:
        corruptions = None
        if evaluate.corruptions is not None:
            if evaluate.corruptions.folder is not None:
                corruptions = Path(evaluate.corruptions.folder)
            else:
                key = str(saved_config(run, []).dataset)
                if key not in folders:
                    folders[key] = generated_corruptions(run, evaluate.corruptions.limit, note)
                corruptions = folders[key]
        work.append((run, [r for r in requests(evaluate, run, corruptions)
                           if not (scored_before(run, arguments(run, r)) and r.save_probs.is_file())]))
    done = 0
    jobs = min(jobs, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 1
    if jobs < 2 or sum(bool(w) for _, w in work) < 2:
        for i, (run, pending) in enumerate(work, 1):
            done += score_run(run, pending)
            progress(i, len(work), run)
        return done
    cores = multiprocessing.get_context("spawn").Queue()
    for core in sorted(os.sched_getaffinity(0))[:jobs]:  # one for each process the pool starts
        cores.put(core)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_one_core,
                             initargs=(cores,)) as pool:
        futures = {pool.submit(score_run, run, pending): run for run, pending in work}
        for i, future in enumerate(as_completed(futures), 1):
            done += future.result()
            progress(i, len(work), futures[future])
    return done


def score_run(run: Path, pending: list[EvalRequest]) -> int:
    """`regbench eval` of `run` for each request; returns how many ran."""
    for request in pending:
        evaluate_run(run, request)
    return len(pending)


def _one_core(cores: Any) -> None:
    # a scoring process keeps to one core, so that trainer.threads=auto gives it one thread and none oversubscribes
    os.sched_setaffinity(0, {cores.get()})
