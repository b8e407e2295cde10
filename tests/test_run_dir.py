"""The run folder has one home, regbench/run_dir/: no other module of the package writes a run or sweep folder's file
name; and what it reads and writes."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from regbench import run_dir
from tests.conftest import read_json

PACKAGE = Path(__file__).resolve().parents[1] / "regbench"
HOME = PACKAGE / "run_dir"
# every name of a run folder and a sweep folder (as a string, an f-string's text or a str.format template)
NAMES = re.compile("|".join([
    r"summary\.json", r"metrics\.jsonl", r"eval\.json", r"eval_args\.json", r"\.eval\.lock", r"corruptions\.json",
    r"curves\.png", r"train\.log", r"(?<![\w.])\.hydra\b", r"\b(config|hydra|overrides)\.yaml\b", r"^checkpoints$",
    r"\bcheckpoints/", r"(\bbest|\blast|^\{\})\.npz\b", r"\bconfusion_\S*\.png", r"\breliability_\S*\.png",
    r"\bcorruptions_\S*\.png", r"/export/", r"\bexport\.json", r"\bmlflow\.json", r"vdlrecords",
    r"\btable\.(md|csv)\b", r"\btable_\S*\.(md|csv)\b", r"\bacross_\S*\.md\b", r"\bcritical_difference_\S*\.png",
    r"\bplot\.png", r"optimization_results\.yaml", r"\bstudy\.json", r"\bREADME\.md", r"\bcorruptions\.png",
    r"\buncertainty\.md\b",
    r"\bprobs_\S*\.npz"]))


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def texts(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string in `source` but docstrings: constants, and f-strings whole, each value as {}."""
    tree = ast.parse(source)
    docs, parts, found = _docstrings(tree), set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts |= {id(v) for v in node.values}
            found.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}"
                                               for v in node.values)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs | parts:
            found.append((node.lineno, node.value))
    return found


def test_the_scan_finds_names_in_strings_and_f_strings_but_not_in_docstrings() -> None:
    source = '''"""Writes summary.json."""
def f(run, name):
    """Reads checkpoints/best.npz."""
    # reads eval.json
    return run / "summary.json", run / f"confusion_{name}_best.png", run / "checkpoints" / f"{name}.npz", "test_acc"
'''
    assert sorted(text for _, text in texts(source) if NAMES.search(text)) == [
        "checkpoints", "confusion_{}_best.png", "summary.json", "{}.npz"]


def test_no_module_but_run_dir_names_a_run_folder_file() -> None:
    found = [f"{path.relative_to(PACKAGE)}:{line}: {text!r}" for path in sorted(PACKAGE.rglob("*.py"))
             if HOME not in path.parents for line, text in texts(path.read_text()) if NAMES.search(text)]
    assert found == []


def test_run_dir_owns_every_name_the_scan_looks_for() -> None:
    names = [v for k, v in vars(run_dir).items() if k.isupper() and isinstance(v, str)]
    names += [run_dir.checkpoint_file(run_dir.BEST), run_dir.checkpoint_file("{}"), run_dir.confusion_png("s", "c"),
              run_dir.reliability_png("s", "c", temperature=True), run_dir.heatmap_png("c"),
              run_dir.metric_table_md("test_acc"), run_dir.metric_table_csv("ood_auroc[dataset=svhn]"),
              run_dir.across_tasks_md("dataset", "test_acc"), run_dir.critical_difference_png("dataset", "test_acc"),
              str(run_dir.export_folder(Path("RUN"), "c")), run_dir.metric_table_md("val_acc@3"),
              run_dir.pooled_reliability_png("none †"), run_dir.probs_npz("s", "c")]
    unmatched = [n for n in names
                 if not NAMES.search(n) and n not in (run_dir.BEST, run_dir.LAST, run_dir.EXPORT_DIR, run_dir.REPORT_DIR)]
    assert unmatched == []


def _run(folder: Path, summary: dict | None = None, hydra: bool = True) -> Path:
    folder.mkdir(parents=True)
    if summary is not None:
        (folder / run_dir.SUMMARY).write_text(json.dumps(summary))
    if hydra:
        (folder / run_dir.HYDRA_DIR).mkdir()
    return folder


def test_runs_are_found_at_any_depth_and_a_sweep_lists_its_numbered_jobs(tmp_path: Path) -> None:
    _run(tmp_path / "a" / "sweep" / "10")
    _run(tmp_path / "a" / "sweep" / "2")
    _run(tmp_path / "a" / "sweep" / "3", summary={"status": "completed"}, hydra=False)  # its .hydra/ is gone
    _run(tmp_path / "a" / "sweep" / "x")
    _run(tmp_path / "a" / "sweep" / ".hidden" / "1")
    _run(tmp_path / "b", summary={"status": "failed"})
    (tmp_path / "c" / "empty").mkdir(parents=True)
    found = [p.relative_to(tmp_path).as_posix() for p in run_dir.run_folders(tmp_path)]
    assert found == ["a/sweep/10", "a/sweep/2", "a/sweep/3", "a/sweep/x", "b"]  # by name at each level
    assert [p.name for p in run_dir.sweep_runs(tmp_path / "a" / "sweep")] == ["2", "10"]  # by number, with a config
    assert run_dir.sweep_runs(tmp_path / "b") is None


def test_the_json_reader_gives_none_for_what_it_cannot_use(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    assert run_dir.read_json(path) is None  # absent
    path.write_text('{"a": 1')  # cut short
    assert run_dir.read_json(path) is None
    path.write_text("[1, 2]")
    assert run_dir.read_json(path) is None and run_dir.read_json(path, list) == [1, 2]
    run_dir.write_json(path, {"b": [1]})
    assert path.read_text() == '{\n  "b": [\n    1\n  ]\n}\n' and read_json(path) == {"b": [1]}
    run_dir.write_json(path, {"b": 1, "a": 2}, indent=1, sort_keys=True, newline=False)
    assert path.read_text() == '{\n "a": 2,\n "b": 1\n}'


def test_the_metrics_log_keeps_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / run_dir.METRICS
    assert run_dir.read_metrics(path) == []
    run_dir.write_metrics(path, [{"step": 1}, {"step": 2}])
    path.write_text(path.read_text() + '{"step": 3, "val')  # a line a crash cut short
    assert run_dir.read_metrics(path) == [{"step": 1}, {"step": 2}]


def test_a_figure_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    plt = run_dir.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = run_dir.save_figure(fig, tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not plt.get_fignums()  # closed
    (tmp_path / "g.png").write_bytes(b"before")
    fig, _ = plt.subplots()
    with pytest.raises(TypeError):
        run_dir.save_figure(fig, tmp_path / "g.png", format_unknown=True)  # savefig refuses: nothing replaced
    assert (tmp_path / "g.png").read_bytes() == b"before" and not plt.get_fignums()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "g.png"]  # no temporary file left
