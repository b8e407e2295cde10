"""After training: score a run's checkpoint again (`regbench eval`) and ship it (`regbench export`).

Both read a run folder as report/ does: its saved config rebuilds the model through the same models/ factories.
"""

CHECKPOINTS = ("best", "last")       # checkpoints/<name>.npz of a run folder
SPLITS = ("train", "val", "test")
FORMATS = ("paddle", "onnx")         # export formats: paddle.jit.save, paddle2onnx
# export's check: the largest max |Δlogits| it accepts unless --tolerance says, the larger of a floor and a multiple
# of the eager model's own spread between batch shapes (float32 rounding some models amplify, e.g. DY-ReLU in ResNet18)
TOLERANCE_FLOOR = 1e-4
SPREAD_FACTOR = 4
