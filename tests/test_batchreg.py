"""Cutout, Mixup, CutMix: their boxes and statistics against the papers' definitions, computed here independently
(Cutout's by enumerating every centre, CutMix's λ by a Monte Carlo of its own); what they do to images and targets;
the loss and train accuracy of mixed targets."""
from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from regbench.reg.batch import BatchRegs, build_batch_regs
from regbench.reg.box import box_mask, clipped_box
from regbench.reg.cutout import Cutout
from regbench.reg.cutmix import CutMix
from regbench.reg.mixup import Mixup
from regbench.config import compose
from regbench.errors import UserError
from regbench.reg.mixed_targets import Mixed, agreement, loss_fn


def paper_span(centre: np.ndarray, length: np.ndarray | int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The papers' span around `centre` (Cutout's code, CutMix's and timm's rand_bbox): [c − length//2, c + length//2)
    clipped to [0, n), as (start, end); elementwise on arrays."""
    return np.clip(centre - length // 2, 0, n), np.clip(centre + length // 2, 0, n)


def possible_spans(length: int, n: int) -> set[tuple[int, int]]:
    """Every (start, end) the papers' span of `length` can take on 0..n-1."""
    return {(int(a), int(b)) for a, b in zip(*paper_span(np.arange(n), length, n))}


def spans_of(marked: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of the one run of True in each row of a [B, n] boolean array (rows with no True left out)."""
    n = marked.shape[1]
    return [(int(row.argmax()), n - int(row[::-1].argmax())) for row in marked if row.any()]


def numbered(b: int, c: int = 3, n: int = 32) -> paddle.Tensor:
    """Image i is the constant i + 1 (never 0), so every output pixel tells which image it came from."""
    return paddle.to_tensor(np.broadcast_to(np.arange(1, b + 1, dtype=np.float32)[:, None, None, None], (b, c, n, n)))


# -- the box Cutout erases and CutMix pastes ---------------------------------------------------------------------------

@pytest.mark.parametrize("height, width, h, w", [(16, 16, 32, 32), (7, 5, 12, 20), (0, 3, 8, 8), (9, 9, 9, 9)])
def test_the_box_is_the_papers_clipped_box_and_lambda_the_share_outside_it(height: int, width: int, h: int,
                                                                            w: int) -> None:
    rows, cols = (a.ravel() for a in np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))  # every centre
    box = clipped_box(rows, cols, height, width, h, w)
    mask = box_mask(*(paddle.to_tensor(side) for side in box.sides), h, w).numpy()
    assert mask.shape == (h * w, 1, h, w)
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for i, (r, c) in enumerate(zip(rows, cols)):
        # the papers' box: [c − side//2, c + side//2) on each axis, the pixels of it that are in the image
        inside = (r - height // 2 <= ys) & (ys < r + height // 2) & (c - width // 2 <= xs) & (xs < c + width // 2)
        assert np.array_equal(mask[i, 0], inside.astype(np.float32)), (r, c)
        assert box.lam[i] == pytest.approx(1.0 - inside.sum() / (h * w), abs=1e-12)


# -- Cutout ------------------------------------------------------------------------------------------------------------

def cutout_fraction(size: int, h: int, w: int) -> tuple[float, float]:
    """Mean and variance of the erased fraction of an h×w image over all h·w centres, by enumeration."""
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    (top, bottom), (left, right) = paper_span(ys, size, h), paper_span(xs, size, w)
    fractions = (bottom - top) * (right - left) / (h * w)
    return float(fractions.mean()), float(fractions.var())


@pytest.mark.parametrize("size, h, w", [(16, 32, 32), (8, 32, 32), (7, 32, 32), (5, 12, 20)])
def test_cutout_erases_the_papers_clipped_square_with_the_expected_mean_area(size: int, h: int, w: int) -> None:
    cutout, rng = Cutout(size), np.random.default_rng(0)
    fractions, row_spans, col_spans = [], set(), set()
    for _ in range(16):
        y, targets = cutout(paddle.ones([256, 3, h, w]), paddle.arange(256), rng)
        erased = (y.numpy() == 0)
        assert (erased == erased[:, :1]).all()  # the same pixels in every channel
        erased = erased[:, 0]
        rows, cols = erased.any(axis=2), erased.any(axis=1)
        assert (erased == (rows[:, :, None] & cols[:, None, :])).all()  # one axis-aligned rectangle per image
        row_spans.update(spans_of(rows))
        col_spans.update(spans_of(cols))
        assert np.array_equal(targets.numpy(), np.arange(256))
        fractions.append(erased.mean(axis=(1, 2)))
    # every side is one the papers' span can take (an odd size never erases size pixels in a row)
    assert row_spans <= possible_spans(size, h) and col_spans <= possible_spans(size, w), (row_spans, col_spans)
    measured = np.concatenate(fractions)
    expected, variance = cutout_fraction(size, h, w)
    assert abs(measured.mean() - expected) < 4 * math.sqrt(variance / len(measured)), (measured.mean(), expected)


def test_cutout_erased_pixels_are_zero_after_normalization() -> None:
    x = paddle.randn([8, 3, 32, 32]) + 5.0  # a normalized batch without zeros
    y = Cutout(16)(x, paddle.zeros([8], dtype="int64"), np.random.default_rng(1))[0].numpy()
    kept = y != 0
    assert np.array_equal(y[kept], x.numpy()[kept]) and (~kept).any()


def test_cutout_larger_than_the_image_is_a_user_error() -> None:
    with pytest.raises(UserError, match="larger than the 16×16 images"):
        Cutout(20)(paddle.ones([1, 3, 16, 16]), paddle.zeros([1], dtype="int64"), np.random.default_rng(0))


# -- Mixup -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [1.0, 0.2])
def test_mixup_lambda_follows_beta_and_mixes_images_and_labels_with_one_permutation(alpha: float) -> None:
    mixup, rng = Mixup(alpha), np.random.default_rng(0)
    lams = []
    for _ in range(4000):
        x = numbered(4, n=2)
        y, t = mixup(x, paddle.arange(4), rng)
        assert isinstance(t, Mixed)
        lam, partner = float(t.lam[0]), t.b.numpy()
        assert np.array_equal(t.a.numpy(), np.arange(4)) and sorted(partner) == [0, 1, 2, 3]
        np.testing.assert_allclose(t.lam.numpy(), lam)
        # every image is λ·itself + (1 − λ)·the image its second label names
        np.testing.assert_allclose(y.numpy()[:, 0, 0, 0], lam * np.arange(1, 5) + (1 - lam) * (partner + 1), rtol=1e-5)
        lams.append(lam)
    lams = np.array(lams)
    mean, var = 0.5, 1.0 / (4.0 * (2.0 * alpha + 1.0))  # Beta(α, α)
    assert abs(lams.mean() - mean) < 4 * math.sqrt(var / len(lams))
    assert abs(lams.var() - var) < 0.1 * var


# -- CutMix ------------------------------------------------------------------------------------------------------------

def cutmix_lambda(h: int, w: int, alpha: float, draws: int) -> tuple[float, float]:
    """Mean and standard deviation of λ after clipping by Monte Carlo from the paper's formula: λ ~ Beta(α, α), cut
    sides ⌊side·√(1 − λ)⌋, a uniform centre, the papers' clipped span on each axis, λ = 1 − box area / image area."""
    rng = np.random.default_rng(12345)
    lam = rng.beta(alpha, alpha, draws)
    cut = np.sqrt(1.0 - lam)
    top, bottom = paper_span(rng.integers(0, h, draws), (h * cut).astype(int), h)
    left, right = paper_span(rng.integers(0, w, draws), (w * cut).astype(int), w)
    clipped = 1.0 - (bottom - top) * (right - left) / (h * w)
    return float(clipped.mean()), float(clipped.std())


def test_cutmix_is_applied_with_prob_and_passes_the_other_batches_unchanged() -> None:
    cutmix, rng, calls = CutMix(alpha=1.0, prob=0.5), np.random.default_rng(0), 4000
    applied = 0
    for _ in range(calls):
        x = numbered(2, c=1, n=8)
        y, t = cutmix(x, paddle.arange(2), rng)
        if isinstance(t, Mixed):
            applied += 1
        else:
            assert np.array_equal(y.numpy(), x.numpy()) and np.array_equal(t.numpy(), [0, 1])
    assert abs(applied / calls - 0.5) < 4 * math.sqrt(0.25 / calls)


@pytest.mark.slow
def test_cutmix_pastes_the_papers_clipped_box_and_lambda_has_the_expected_mean() -> None:
    cutmix, rng, n, calls = CutMix(alpha=1.0, prob=1.0), np.random.default_rng(0), 32, 12000
    boxes = [possible_spans(side, n) for side in range(n + 1)]  # by cut side ⌊n·√(1 − λ)⌋
    lams = []
    for _ in range(calls):
        x = numbered(2, c=1, n=n)
        y, t = cutmix(x, paddle.arange(2), rng)
        own = (y.numpy()[:, 0] == x.numpy()[:, 0]).mean(axis=(1, 2))
        swapped = t.b.numpy() != t.a.numpy()
        # λ is the share of each image's own pixels (where the permutation swapped it)
        np.testing.assert_allclose(own[swapped], t.lam.numpy()[swapped], atol=1e-6)
        box = y.numpy()[0, 0] != x.numpy()[0, 0]
        if box.any():
            rows, cols = box.any(axis=1), box.any(axis=0)
            assert (box == (rows[:, None] & cols[None, :])).all()  # a rectangle
            # both sides are the papers' spans of one cut side (a square image)
            row, col = spans_of(rows[None])[0], spans_of(cols[None])[0]
            assert any(row in spans and col in spans for spans in boxes), (row, col)
        lams.append(float(t.lam[0]))
    draws = 2_000_000
    expected, std = cutmix_lambda(n, n, 1.0, draws)
    assert abs(np.mean(lams) - expected) < 4 * std * math.sqrt(1 / len(lams) + 1 / draws), (np.mean(lams), expected)


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_cutmix_prob_bounds(prob: float) -> None:
    rng = np.random.default_rng(0)
    kinds = {isinstance(CutMix(1.0, prob)(numbered(2), paddle.arange(2), rng)[1], Mixed) for _ in range(50)}
    assert kinds == {prob == 1.0}


@pytest.mark.parametrize("make, message", [
    (lambda: Mixup(0.0), "alpha must be > 0"), (lambda: CutMix(-1.0, 0.5), "alpha must be > 0"),
    (lambda: CutMix(1.0, 1.5), "prob must be in"), (lambda: Cutout(0), "size must be >= 1"),
])
def test_bad_settings_raise_user_error(make, message: str) -> None:
    with pytest.raises(UserError, match=message):
        make()


def test_two_label_mixers_in_a_row_are_refused() -> None:
    both = BatchRegs([Mixup(1.0), CutMix(1.0, 1.0)])
    with pytest.raises(UserError, match="label-mixed once"):
        both(numbered(4), paddle.arange(4), np.random.default_rng(0))


def test_reg_batch_builds_the_transforms_in_order_and_knows_they_mix() -> None:
    batch = build_batch_regs(compose(["reg=[cutout,droppath,cutmix]"]).reg)
    assert [type(t).__name__ for t in batch.transforms] == ["Cutout", "CutMix"] and batch.mixes
    assert build_batch_regs(compose(["reg=dropblock"]).reg) is None
    assert not build_batch_regs(compose(["reg=cutout"]).reg).mixes


# -- the trainer's path: draws made ahead, the same numbers as the formulas ---------------------------------------------

def reference(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
              options: list[tuple[str, tuple[float, ...]]]) -> tuple[np.ndarray, np.ndarray, float | None]:
    """The papers' formulas in numpy, drawing from rng in this order per option: cutout (size) the centre rows, then
    columns; mixup (alpha) λ, then the permutation; cutmix (alpha, prob) u < prob, λ, the box's centre row and
    column, the permutation. Returns the images, the second labels and λ (None: unmixed)."""
    x, partner, lam = x.copy(), labels, None
    b, _, h, w = x.shape
    for kind, p in options:
        if kind == "cutout":
            (size,), half = p, int(p[0]) // 2
            rows, cols = rng.integers(0, h, b), rng.integers(0, w, b)
            for i in range(b):
                x[i, :, max(rows[i] - half, 0):rows[i] + half, max(cols[i] - half, 0):cols[i] + half] = 0.0
        elif kind == "mixup":
            lam = rng.beta(p[0], p[0])
            perm = rng.permutation(b)
            x, partner = np.float32(lam) * x + np.float32(1.0 - lam) * x[perm], labels[perm]
        elif rng.random() < p[1]:  # cutmix
            cut = math.sqrt(1.0 - rng.beta(p[0], p[0]))
            (top, bottom), (left, right) = paper_span(rng.integers(0, h), int(h * cut), h), \
                paper_span(rng.integers(0, w), int(w * cut), w)
            perm = rng.permutation(b)
            x[:, :, top:bottom, left:right] = x[perm][:, :, top:bottom, left:right]
            partner, lam = labels[perm], 1.0 - (bottom - top) * (right - left) / (h * w)
    return x, partner, lam


OPTIONS = {"cutout": lambda p: Cutout(*p), "mixup": lambda p: Mixup(*p), "cutmix": lambda p: CutMix(*p)}


@pytest.mark.parametrize("options", [
    [("cutout", (7,)), ("mixup", (0.4,))],
    [("cutmix", (1.0, 0.5)), ("cutout", (16,))],
    [("mixup", (1.0,))],
])
def test_the_trainers_steps_equal_the_formulas_and_draw_once_per_window(options) -> None:
    """As the trainer calls them: step s of batch size b draws from stream(s); draws are made for a window of steps
    at once (up to the next multiple of 4 here, as of trainer.log_every), and again when a batch's size differs."""
    regs, window = BatchRegs([OPTIONS[kind](p) for kind, p in options]), 4
    sizes = [8, 8, 8, 8, 8, 5, 8, 8, 8, 8, 8, 7]  # a batch with skipped images at step 5, a short last one

    def stream(step: int) -> np.random.Generator:
        return np.random.default_rng([21, 2, step])

    data, drawn_at, ahead = np.random.default_rng(5), [], None
    for step, b in enumerate(sizes):
        x = data.normal(size=(b, 3, 32, 32)).astype(np.float32)
        labels = data.integers(0, 10, b)
        got, targets = regs.at_step(paddle.to_tensor(x), paddle.to_tensor(labels), step,
                                    (step // window + 1) * window, stream)
        expected, partner, lam = reference(x, labels, stream(step), options)
        assert np.array_equal(got.numpy(), expected), step  # bit for bit
        if lam is None:
            assert not isinstance(targets, Mixed) and np.array_equal(targets.numpy(), labels)
        else:
            assert np.array_equal(targets.a.numpy(), labels) and np.array_equal(targets.b.numpy(), partner)
            assert np.array_equal(targets.lam.numpy(), np.full(b, lam, np.float32))
        if regs._ahead is not ahead:
            drawn_at.append(step)
            ahead = regs._ahead
    assert drawn_at == [0, 4, 5, 6, 8, 11]


# -- loss and train accuracy of mixed targets ----------------------------------------------------------------------

def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixed_loss_is_lambda_weighted_cross_entropy_of_both_labels(smoothing: float) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    a, b, lam = rng.integers(0, 5, 6), rng.integers(0, 5, 6), rng.random(6).astype(np.float32)
    targets = Mixed(paddle.to_tensor(a), paddle.to_tensor(b), paddle.to_tensor(lam))
    logp = log_softmax(logits.astype(np.float64))

    def ce(y: np.ndarray) -> np.ndarray:
        soft = np.full((6, 5), smoothing / 5) + (1 - smoothing) * np.eye(5)[y]
        return -(soft * logp).sum(axis=1)

    expected = lam * ce(a) + (1 - lam) * ce(b)
    got = loss_fn(paddle.to_tensor(logits), targets, smoothing)
    np.testing.assert_allclose(float(got), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(loss_fn(paddle.to_tensor(logits), targets, smoothing, "sum")), expected.sum(),
                               rtol=1e-5)
    hard = loss_fn(paddle.to_tensor(logits), paddle.to_tensor(a), smoothing)
    np.testing.assert_allclose(float(hard), ce(a).mean(), rtol=1e-5)


def test_train_accuracy_of_mixed_targets_is_the_lambda_weighted_agreement() -> None:
    logits = paddle.to_tensor(np.eye(4, dtype=np.float32))  # predicts 0, 1, 2, 3
    targets = Mixed(paddle.to_tensor([0, 1, 0, 3]), paddle.to_tensor([1, 1, 2, 0]), paddle.to_tensor([0.7, 0.6, 0.2, 0.5]))
    # sample 0: 0.7 (a right) · 1: 1.0 (both) · 2: 0.8 (b right) · 3: 0.5 (a right)
    assert float(agreement(logits, targets)) == pytest.approx(0.7 + 1.0 + 0.8 + 0.5)
    assert float(agreement(logits, paddle.to_tensor([0, 0, 2, 3]))) == 3.0
