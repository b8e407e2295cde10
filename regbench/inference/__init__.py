"""After training: score a run's checkpoint again (`regbench eval`) and ship it (`regbench export`).

Both read a run folder as report/ does: its saved config rebuilds the model through the same models/ factories.
`regbench eval` is composed of parts (inference/evaluate.py): the request (request.py), one scoring of the run's
checkpoint (scorer.py), each analysis the request asks for (temperature.py, robustness.py, ood.py, mc.py, attack.py),
the figures (figures.py) and the storage of every figure in the run folder (run_dir/evaluated.py). `regbench eval
--ensemble` scores several runs' mean softmax instead (ensemble.py).
"""

SPLITS = ("train", "val", "test")
FORMATS = ("paddle", "onnx")         # export formats: paddle.jit.save, paddle2onnx
# export's check: the largest max |Δlogits| it accepts unless --tolerance says, the larger of a floor and a multiple
# of the eager model's own spread between batch shapes (float32 rounding some models amplify, e.g. DY-ReLU in ResNet18)
TOLERANCE_FLOOR = 1e-4
SPREAD_FACTOR = 4
