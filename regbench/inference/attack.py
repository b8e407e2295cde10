"""`regbench eval --attack fgsm:EPS` and `--attack pgd:EPS:STEPS[:STEP]`: adversarial robustness under an L∞ attack
of radius EPS in [0, 1] pixel space, before the dataset's normalization, the attacked images clipped to valid pixels
and the model in evaluation mode: FGSM (Goodfellow et al. 2015), one step of EPS along the sign of the input gradient
of the cross-entropy of the true label; PGD (Madry et al. 2018), a uniform random start in the EPS-ball, then STEPS
such steps of STEP (EPS/4 unless given), each projected back onto the ball. The attacked split is scored with every
metric of the averaged and ranking records: `fgsm_EPS_<split>_acc`, `pgd_EPS_STEPS_<split>_ece`, ..."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import paddle
import paddle.nn.functional as F

from regbench import metrics
from regbench.errors import UserError
from regbench.inference.analysis import Analysis, Context, Families, Step
from regbench.inference.request import EvalRequest
from regbench.inference.scorer import Scorer
from regbench.train.loop import derive_seed

if TYPE_CHECKING:
    from regbench.scoring import Scores

KINDS = ("fgsm", "pgd")
ATTACK_STREAM = 3  # derive_seed's key of PGD's random starts (training's masks use 1, MC passes 2)
STEP_FRACTION = 0.25  # PGD's step: EPS/4 unless given
Normalize = Callable[[paddle.Tensor], paddle.Tensor]  # pixels in [0, 1] -> the model's input


@dataclass(frozen=True)
class Attack:
    """One attack of --attack: its kind, radius, and (PGD) steps and step size."""
    spec: str
    kind: str
    eps: float
    steps: int = 1
    step: float = 0.0

    @property
    def start(self) -> str:
        """What its figures' names start with: fgsm_0.03, pgd_0.03_10 (the spec, colons as underscores)."""
        return self.spec.replace(":", "_")


def parse_attack(spec: str) -> Attack:
    """An --attack spec: fgsm:EPS or pgd:EPS:STEPS[:STEP], EPS in [0, 1]."""
    usage = "give fgsm:EPS or pgd:EPS:STEPS[:STEP] with EPS in [0, 1] pixel units (e.g. fgsm:0.03, pgd:0.03:10)"
    kind, *numbers = spec.split(":")
    sizes = {"fgsm": (1,), "pgd": (2, 3)}
    if kind not in KINDS or len(numbers) not in sizes[kind]:
        raise UserError(f"--attack {spec!r}: {usage}")
    try:
        eps = float(numbers[0])
        steps = int(numbers[1]) if kind == "pgd" else 1
        step = float(numbers[2]) if len(numbers) == 3 else STEP_FRACTION * eps
    except ValueError:
        raise UserError(f"--attack {spec!r}: {usage}") from None
    if not 0 <= eps <= 1 or steps < 1 or step < 0:
        raise UserError(f"--attack {spec!r}: {usage}, STEPS >= 1 and STEP >= 0")
    return Attack(spec, kind, eps, steps, step)


def _gradient_sign(model: paddle.nn.Layer, pixels: paddle.Tensor, labels: paddle.Tensor,
                   normalize: Normalize) -> paddle.Tensor:
    """sign of the gradient of the mean cross-entropy of the true labels with respect to the pixels."""
    pixels = pixels.detach()
    pixels.stop_gradient = False
    loss = F.cross_entropy(model(normalize(pixels)), labels)
    return paddle.sign(paddle.grad(loss, pixels)[0])


def fgsm(model: paddle.nn.Layer, pixels: paddle.Tensor, labels: paddle.Tensor, eps: float,
         normalize: Normalize) -> paddle.Tensor:
    """FGSM's images: pixels + eps·sign(∇ loss), clipped to [0, 1]."""
    return paddle.clip(pixels + eps * _gradient_sign(model, pixels, labels, normalize), 0.0, 1.0)


def pgd(model: paddle.nn.Layer, pixels: paddle.Tensor, labels: paddle.Tensor, attack: Attack, normalize: Normalize,
        rng: np.random.Generator) -> paddle.Tensor:
    """PGD's images: a uniform start in the eps-ball, then `steps` signed-gradient steps, each projected onto the ball
    and [0, 1]."""
    low, high = paddle.clip(pixels - attack.eps, 0.0, 1.0), paddle.clip(pixels + attack.eps, 0.0, 1.0)
    noise = rng.uniform(-attack.eps, attack.eps, pixels.shape).astype(np.float32)
    adversarial = paddle.clip(pixels + paddle.to_tensor(noise), 0.0, 1.0)
    for _ in range(attack.steps):
        adversarial = adversarial + attack.step * _gradient_sign(model, adversarial, labels, normalize)
        adversarial = paddle.minimum(paddle.maximum(adversarial, low), high)
    return adversarial


def attacked_log_probs(model: paddle.nn.Layer, batches: Any, attack: Attack, mean: list[float], std: list[float],
                       noise_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(float64 log-probabilities [n, C] of the attacked images of `batches` (normalized images, labels), labels)."""
    model.eval()
    mean_t = paddle.to_tensor(np.asarray(mean, np.float32).reshape(1, -1, 1, 1))
    std_t = paddle.to_tensor(np.asarray(std, np.float32).reshape(1, -1, 1, 1))

    def normalize(pixels: paddle.Tensor) -> paddle.Tensor:
        return (pixels - mean_t) / std_t

    rng = np.random.default_rng(derive_seed(noise_seed, ATTACK_STREAM))
    kept, labels_kept = [], []
    for images, labels in batches:
        pixels = images * std_t + mean_t
        adversarial = (fgsm(model, pixels, labels, attack.eps, normalize) if attack.kind == "fgsm"
                       else pgd(model, pixels, labels, attack, normalize, rng))
        with paddle.no_grad():
            kept.append(metrics.log_softmax(model(normalize(adversarial)).astype("float32").numpy()))
        labels_kept.append(labels.numpy())
    return np.concatenate(kept), np.concatenate(labels_kept)


def _arguments(run: Path, request: EvalRequest) -> dict[str, Any]:
    return dict(attacks=list(request.attacks)) if request.attacks else {}


def _check(request: EvalRequest) -> None:
    for spec in request.attacks:
        parse_attack(spec)


def _prepare(ctx: Context) -> Step | None:
    if not ctx.request.attacks:
        return None
    attacks = [parse_attack(spec) for spec in ctx.request.attacks]

    def step(scores: Scores, scored: Scorer) -> tuple[dict[str, Any], Families]:
        """Each attack on the scored split: the attacked images' figures."""
        from regbench.inference.trained_run import load_model
        from regbench.scoring import eval_loader

        model = load_model(ctx.cfg, ctx.run, ctx.request.checkpoint)
        part: dict[str, Any] = {}
        found: Families = {}
        for attack in attacks:
            batches = eval_loader(ctx.cfg.dataset, ctx.cfg.trainer, ctx.split).epoch(seed=None)
            log_probs, labels = attacked_log_probs(model, batches, attack, list(ctx.cfg.dataset.mean),
                                                   list(ctx.cfg.dataset.std), int(ctx.cfg.seeds.noise))
            figures = metrics.averaged(log_probs, labels)
            part[attack.spec] = dict(eps=attack.eps, steps=attack.steps, step=attack.step, **figures)
            family = metrics.prefix(ctx.start, attack.start, ctx.split_name)
            found[family] = dict(ctx.source, attack=attack.spec, figures={
                **metrics.named(family, "averaged", figures), **metrics.named(family, "ranking", figures)})
        return part, found

    return step


ATTACK = Analysis("attacks", _arguments, _prepare, _check)
