"""What `regbench eval` is asked: one request, the same for one run and for every run of a sweep."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SETS = ("common", "extra", "all")  # what --corruptions-set chooses among (inference/robustness.py)


@dataclass(frozen=True)
class EvalRequest:
    """The options of `regbench eval` (its --help says each); an analysis runs when its option is given."""
    checkpoint: str                    # checkpoints/<checkpoint>.npz: best or last
    split: str | None = None           # None: test when the dataset has one distinct from val, else val
    overrides: tuple[str, ...] = ()    # key=value changes to the run's saved config
    output: Path | None = None         # the confusion-matrix PNG (one run only)
    save_probs: Path | None = None     # an .npz of the scored split's probabilities and labels (one run only)
    temperature_scale: bool = False    # inference/temperature.py
    corruptions: Path | None = None    # inference/robustness.py: a folder in the CIFAR-10-C layout...
    baseline: Path | None = None       # ... the run its mCE and relative mCE compare with ...
    corruptions_set: str | None = None  # ... and the set of corruptions its means cover
    ood: str | None = None             # inference/ood.py: the OOD dataset's overrides
    mc_samples: int | None = None      # inference/mc.py: the stochastic passes averaged
    attacks: tuple[str, ...] = ()      # inference/attack.py: fgsm:EPS, pgd:EPS:STEPS[:STEP]
