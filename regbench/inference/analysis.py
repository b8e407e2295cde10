"""What an analysis of `regbench eval` (temperature scaling, corruptions, OOD detection, ...) is given and gives back.

An analysis is two or three functions (an `Analysis`): `arguments` gives its options as eval_args.json records them
(a new analysis adds its keys only when asked, so that the evaluations stored before it existed still count as made);
`prepare` returns None when the request does not ask for it, else checks and loads what it needs before any scoring
and returns its step; `check`, if any, refuses a request it cannot serve before anything is read. The step takes the scores of the
run's split and the run's scorer, and returns its part of eval's JSON line and its eval.json families. Adding one:
its options in EvalRequest (and `regbench eval`'s), a module with its functions, a line in inference/evaluate.py's
ANALYSES."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from omegaconf import DictConfig

from regbench import metrics
from regbench.data.splits import Split
from regbench.inference.request import EvalRequest
from regbench.inference.scorer import Scorer
from regbench.run_dir import LAST
from regbench.run_dir.evaluated import checkpoint_stamp

if TYPE_CHECKING:
    from regbench.scoring import Scores

Families = dict[str, dict[str, Any]]  # eval.json's families by name: what each was computed from, and its figures
Step = Callable[["Scores", Scorer], "tuple[dict[str, Any], Families]"]


@dataclass(frozen=True)
class Analysis:
    key: str  # its part of eval's JSON line
    arguments: Callable[[Path, EvalRequest], dict[str, Any]]
    prepare: Callable[[Context], Step | None]
    check: Callable[[EvalRequest], None] | None = None


@dataclass(frozen=True)
class Context:
    """One run's evaluation: the run, the request, the run's config (with the request's overrides) and its split."""
    run: Path
    request: EvalRequest
    cfg: DictConfig
    split_name: str
    split: Split
    classes: tuple[str, ...]

    @property
    def start(self) -> str:
        """What its figures' names start with: nothing for the best checkpoint, final for the last (as summary.json
        names the last weights' test figures)."""
        return metrics.FINAL if self.request.checkpoint == LAST else ""

    @property
    def heading(self) -> str:
        """The first line of its figures' titles."""
        return f"{self.run.name} · {self.request.checkpoint} checkpoint · {self.split_name}"

    @property
    def source(self) -> dict[str, Any]:
        """What its figures are computed from, as eval.json's families record it."""
        checkpoint = self.request.checkpoint
        return dict(checkpoint=checkpoint, stamp=checkpoint_stamp(self.run, checkpoint),
                    overrides=list(self.request.overrides), split=self.split_name)

    def figure(self, name: str) -> Path:
        """Where its PNG `name` goes: beside --output when given, else in the run folder."""
        return (self.request.output.parent if self.request.output else self.run) / name
