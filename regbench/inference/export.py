"""`regbench export`: a run's model as a Paddle inference model (paddle.jit.save) or an ONNX file (paddle2onnx).

The exported model takes what the trained model takes: float32 [batch, C, H, W] images normalized with the
dataset's mean and std (export.json says which), any batch size; regularizers are identities, as in evaluation.
"""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np
import paddle
from omegaconf import DictConfig

from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.scoring import eval_loader, score
from regbench.atomic_files import copy_file, staged_files
from regbench.inference import FORMATS, SPREAD_FACTOR, TOLERANCE_FLOOR
from regbench.inference.trained_run import load_model, saved_config
from regbench.train.tf32 import tf32_off

INPUT_NAME = "image"


class ExportMismatch(UserError):
    """The exported model's logits are further from the eager model's than the tolerance."""

    exit_code = 1


@contextmanager
def _captured_output() -> Iterator[IO[str]]:
    """Send what exporters print (Paddle's and paddle2onnx's C++ logs included) to a temporary file, not the
    terminal; the file is readable after the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile("w+") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield log
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _last_line(log: IO[str]) -> str:
    log.seek(0)
    lines = [line.strip() for line in log.read().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def save_inference_model(model: paddle.nn.Layer, input_shape: list[int], prefix: Path) -> list[Path]:
    """paddle.jit.save with a variable batch size; returns the files written (program and parameters)."""
    model.eval()
    for p in model.parameters():  # inference: no gradients, so DY-ReLU traces its plain (exportable) path
        p.stop_gradient = True
    spec = paddle.static.InputSpec([None, *input_shape], "float32", INPUT_NAME)
    paddle.jit.save(model, str(prefix), input_spec=[spec])
    # Paddle 3 writes the program as PIR JSON (model.json), Paddle 2.6 as a protobuf (model.pdmodel)
    return [f for f in (prefix.with_suffix(".json"), prefix.with_suffix(".pdmodel"), prefix.with_suffix(".pdiparams"))
            if f.is_file()]


def to_onnx(program: Path, params: Path, out: Path, opset: int) -> None:
    """paddle2onnx: the saved inference model as an ONNX file."""
    try:
        import paddle2onnx
    except ImportError:
        raise UserError("--format onnx needs paddle2onnx: pip install 'regbench[export]'") from None
    except Exception as err:  # paddle2onnx 2.x refuses to load beside Paddle 2.6
        reason = str(err).split(". ")[0].split(": python -m")[0]
        raise UserError(f"paddle2onnx cannot run with Paddle {paddle.__version__} ({reason}); with Paddle 2.6 "
                        "install paddle2onnx 1.x: pip install 'paddle2onnx<2'") from None
    paddle2onnx.export(str(program), str(params), str(out), opset_version=opset, verbose=False)
    if not out.is_file():
        raise RuntimeError("paddle2onnx wrote no file")


def export_model(model: paddle.nn.Layer, input_shape: list[int], folder: Path, fmt: str, opset: int,
                 verify: Callable[[list[Path]], None] | None = None) -> list[Path]:
    """Write `model` in `fmt` into `folder` (files replaced atomically, only when `verify`, given the files before
    they replace anything, raises nothing); returns the files written."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    with tempfile.TemporaryDirectory() as scratch, staged_files(folder) as out, _captured_output() as log:
        try:
            program = save_inference_model(model, input_shape, Path(scratch) / "model")
            if fmt == "onnx":
                to_onnx(program[0], program[-1], out / "model.onnx", opset)
                names = ["model.onnx"]
            else:
                for f in program:
                    copy_file(f, out / f.name)
                names = [f.name for f in program]  # the program first, its parameters last
            if verify is not None:
                verify([out / name for name in names])
        except UserError:
            raise
        except Exception as err:
            detail = _last_line(log) or f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            raise UserError(f"{fmt} export of {type(model).__name__} failed with Paddle {paddle.__version__}"
                            f"{_onnx_version() if fmt == 'onnx' else ''}: {detail[:400]}") from None
    return [folder / name for name in names]


def _onnx_version() -> str:
    try:
        import paddle2onnx

        return f" and paddle2onnx {paddle2onnx.__version__}"
    except ImportError:
        return ""


def exported_model(files: list[Path], fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    """The exported model as a function from float32 images to logits: Paddle Inference for `paddle`, onnxruntime
    for `onnx`."""
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise UserError("checking an ONNX export needs onnxruntime: pip install 'regbench[export]' "
                            "(or --check 0)") from None
        session = onnxruntime.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
        return lambda images: session.run(None, {session.get_inputs()[0].name: images})[0]
    config = paddle.inference.Config(str(files[0]), str(files[-1]))
    config.disable_gpu()
    config.disable_glog_info()
    if paddle.__version__.startswith("2."):  # Paddle 2.6's oneDNN kernels refuse some of DY-ReLU's broadcasts
        config.disable_mkldnn()
    predictor = paddle.inference.create_predictor(config)

    def run(images: np.ndarray) -> np.ndarray:
        predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(images)
        predictor.run()
        return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()

    return run


def compare(model: paddle.nn.Layer, files: list[Path], fmt: str, dataset: DictConfig, trainer: DictConfig,
            split: Split) -> tuple[float, float]:
    """(max |Δlogits| of the exported model from the eager one, the eager model's own spread: max |Δlogits| between
    its evaluation batches and the same images one at a time) over `split`, batched as an evaluation."""
    batched = eval_loader(dataset, trainer, split)
    with tf32_off():  # a float32 reference: the predictor runs on the CPU, without TF32
        eager = score(model, batched, trainer.label_smoothing, "off", per_sample=True).logits
        alone = score(model, eval_loader(dataset, trainer, split, batch_size=1), trainer.label_smoothing, "off",
                      per_sample=True).logits
    run = exported_model(files, fmt)
    exported = np.concatenate([run(images.numpy()) for images, _ in batched.epoch(seed=None)])
    return float(np.abs(exported - eager).max()), float(np.abs(alone - eager).max())


def default_tolerance(spread: float) -> float:
    """The largest max |Δlogits| an export may have from its eager model whose own spread is `spread`."""
    return max(TOLERANCE_FLOOR, SPREAD_FACTOR * spread)


def input_description(cfg: DictConfig) -> dict[str, Any]:
    """What an exported model expects as input and gives as output."""
    ds = cfg.dataset
    return dict(input=INPUT_NAME, shape=["batch", ds.channels, ds.image_size, ds.image_size], dtype="float32",
                normalize="(pixel / 255 - mean) / std per channel", mean=list(ds.mean), std=list(ds.std),
                output="logits", num_classes=ds.num_classes)


def export_run(run: Path, fmt: str, checkpoint: str, output: Path | None, overrides: list[str], opset: int,
               check: int, tolerance: float | None) -> dict[str, Any]:
    """Export checkpoints/<checkpoint>.npz of `run` (to RUN/export/<checkpoint>/ unless `output` names a folder);
    with check > 0, first compare the exported model's logits with the eager model's on that many val images: an
    export further than `tolerance` (default: default_tolerance) is not written (ExportMismatch)."""
    from regbench.data import in_memory, load_splits
    from regbench.run_dir import EXPORT_INFO, export_folder, write_json

    cfg = saved_config(run, overrides)
    paddle.set_device("cpu")  # the check runs the export on the CPU: its eager reference too
    model = load_model(cfg, run, checkpoint)
    folder = output or export_folder(run, checkpoint)
    checked: dict[str, Any] = {}
    split = in_memory(load_splits(cfg.dataset).val.head(check)) if check > 0 else None

    def verify(files: list[Path]) -> None:
        diff, spread = compare(model, files, fmt, cfg.dataset, cfg.trainer, split)
        allowed = default_tolerance(spread) if tolerance is None else tolerance
        checked.update(checked_images=len(split), max_abs_diff=diff, batch_spread=spread, tolerance=allowed)
        if diff > allowed:
            raise ExportMismatch(f"the {fmt} export is further from the eager model than allowed: max |Δlogits| "
                                 f"{diff:.3g} on {len(split)} val images > tolerance {allowed:.3g}; nothing written "
                                 "(a larger --tolerance T accepts it)")

    files = export_model(model, [cfg.dataset.channels, cfg.dataset.image_size, cfg.dataset.image_size], folder, fmt,
                         opset, verify if split is not None else None)
    info = dict(run=str(run), checkpoint=checkpoint, **input_description(cfg))
    write_json(folder / EXPORT_INFO, info)
    return dict(format=fmt, files=[str(f) for f in files], **checked, **info)
