"""`regbench export`: a run's model as a Paddle inference model (paddle.jit.save) or an ONNX file (paddle2onnx).

The exported model takes what the trained model takes: float32 [batch, C, H, W] images normalized with the
dataset's mean and std (export.json says which), any batch size; regularizers are identities, as in evaluation.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
import paddle
from omegaconf import DictConfig

from regbench.errors import UserError
from regbench.files import copy_file, staged_files
from regbench.inference import FORMATS
from regbench.inference.run_folder import load_model, saved_config
from regbench.train.tf32 import tf32_off

INPUT_NAME = "image"


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


def export_model(model: paddle.nn.Layer, input_shape: list[int], folder: Path, fmt: str, opset: int) -> list[Path]:
    """Write `model` in `fmt` into `folder` (files replaced atomically); returns the files written."""
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


def run_exported(files: list[Path], fmt: str, images: np.ndarray) -> np.ndarray:
    """Logits of an exported model on float32 images: Paddle Inference for `paddle`, onnxruntime for `onnx`."""
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise UserError("checking an ONNX export needs onnxruntime: pip install 'regbench[export]' "
                            "(or --check 0)") from None
        session = onnxruntime.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: images})[0]
    config = paddle.inference.Config(str(files[0]), str(files[-1]))
    config.disable_gpu()
    config.disable_glog_info()
    if paddle.__version__.startswith("2."):  # Paddle 2.6's oneDNN kernels refuse some of DY-ReLU's broadcasts
        config.disable_mkldnn()
    predictor = paddle.inference.create_predictor(config)
    predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(images)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def max_abs_diff(model: paddle.nn.Layer, files: list[Path], fmt: str, images: np.ndarray) -> float:
    """The largest difference between the exported model's logits and the eager model's on `images`."""
    model.eval()
    with paddle.no_grad(), tf32_off():  # a float32 reference: the predictor runs on the CPU, without TF32
        eager = model(paddle.to_tensor(images)).numpy()
    return float(np.abs(run_exported(files, fmt, images) - eager).max())


def input_description(cfg: DictConfig) -> dict[str, Any]:
    """What an exported model expects as input and gives as output."""
    ds = cfg.dataset
    return dict(input=INPUT_NAME, shape=["batch", ds.channels, ds.image_size, ds.image_size], dtype="float32",
                normalize="(pixel / 255 - mean) / std per channel", mean=list(ds.mean), std=list(ds.std),
                output="logits", num_classes=ds.num_classes)


def val_images(cfg: DictConfig, n: int) -> np.ndarray:
    """The first n images of the run's val split, normalized as the model takes them."""
    from regbench.data import load_splits
    from regbench.data.batches import BatchLoader

    ds = cfg.dataset
    split = load_splits(ds).val.head(n)
    loader = BatchLoader(split, batch_size=n, mean=list(ds.mean), std=list(ds.std), crop_padding=ds.crop_padding,
                         resized_crop_scale=tuple(ds.resized_crop_scale), even_shards=False)
    return next(loader.epoch(seed=None))[0].numpy()


def export_run(run: Path, fmt: str, checkpoint: str, output: Path | None, overrides: list[str], opset: int,
               check: int) -> dict[str, Any]:
    """Export checkpoints/<checkpoint>.npz of `run` (to RUN/export/<checkpoint>/ unless `output` names a folder);
    with check > 0, compare the exported model's logits with the eager model's on that many val images."""
    from regbench.train.run_dir import write_json

    cfg = saved_config(run, overrides)
    model = load_model(cfg, run, checkpoint)
    folder = output or run / "export" / checkpoint
    files = export_model(model, [cfg.dataset.channels, cfg.dataset.image_size, cfg.dataset.image_size], folder, fmt,
                         opset)
    info = dict(run=str(run), checkpoint=checkpoint, **input_description(cfg))
    write_json(folder / "export.json", info)
    checked = {}
    if check > 0:
        images = val_images(cfg, check)
        checked = dict(checked_images=len(images), max_abs_diff=max_abs_diff(model, files, fmt, images))
    return dict(format=fmt, files=[str(f) for f in files], **checked, **info)
