"""The scoring stage of a study: every completed run of a sweep scored as its article's `evaluate` section declares
(`regbench eval` on each split, the probabilities saved for the pooled reliability diagrams, corruptions and OOD on
the first split, MC passes of the runs with stochastic layers), each row's seeds ensembled, work already done with the
same arguments left alone; corrupted test sets generated once per dataset and cached under outputs/."""
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
from regbench.inference.ensemble import ensemble_arguments, evaluate_ensemble
from regbench.inference.evaluate import arguments, evaluate_run
from regbench.inference.mc import samples_stochastically
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
    """One `regbench eval` request per declared split, the analyses on the first; then the MC scoring of the first
    split when the evaluate section asks for it and the run's model has stochastic layers."""
    ood = " ".join(evaluate.ood[0]) if evaluate.ood else None
    found = [EvalRequest(checkpoint=evaluate.checkpoint, split=split,
                         save_probs=run / probs_npz(split, evaluate.checkpoint),
                         corruptions=corruptions if i == 0 else None, ood=ood if i == 0 else None)
             for i, split in enumerate(evaluate.splits)]
    if evaluate.mc_samples is not None and samples_stochastically(saved_config(run, [])):
        found.append(EvalRequest(checkpoint=evaluate.checkpoint, split=evaluate.splits[0],
                                 mc_samples=evaluate.mc_samples))
    return found


def _done(run: Path, request: EvalRequest) -> bool:
    """Whether `run` was evaluated with the request's arguments (and its probabilities, when asked, are there)."""
    return scored_before(run, arguments(run, request)) and (request.save_probs is None or request.save_probs.is_file())


def seed_rows(sweep: Path) -> list[tuple[str, list[Path]]]:
    """(name, completed runs) of every row of the sweep with at least two completed runs: the seeds to ensemble."""
    from regbench.report.runs import find_runs
    from regbench.study.rows import named_rows

    rows = [(name, [r.path for r in row.runs if r.status == "completed"]) for name, row in
            named_rows(find_runs([sweep]))]
    return [(name, runs) for name, runs in rows if len(runs) > 1]


def ensemble_rows(rows: list[tuple[str, list[Path]]], evaluate: Evaluate,
                  progress: Callable[[int, int, str], None]) -> int:
    """`regbench eval --ensemble` of each row's runs on the first split, rows already ensembled with the same
    arguments left alone; `progress` is told as each row is done. Returns how many ensembles ran."""
    done = 0
    for i, (name, runs) in enumerate(rows, 1):
        request = EvalRequest(checkpoint=evaluate.checkpoint, split=evaluate.splits[0])
        if not all(scored_before(run, ensemble_arguments(runs, request)) for run in runs):
            evaluate_ensemble(runs, request)
            done += 1
        progress(i, len(rows), name)
    return done


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
        work.append((run, [r for r in requests(evaluate, run, corruptions) if not _done(run, r)]))
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
