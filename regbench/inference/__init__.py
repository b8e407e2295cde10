"""After training: score a run's checkpoint again (`regbench eval`) and ship it (`regbench export`).

Both read a run folder as report/ does: its saved config rebuilds the model through the same models/ factories.
"""

CHECKPOINTS = ("best", "last")       # checkpoints/<name>.npz of a run folder
SPLITS = ("train", "val", "test")
FORMATS = ("paddle", "onnx")         # export formats: paddle.jit.save, paddle2onnx
