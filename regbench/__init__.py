"""regbench: an experiment runner for CNN regularization on PaddlePaddle."""
# Paddle 2.6's CPU build carries its own zlib: unless Python's is loaded first, the first compressed read after
# `import paddle` (np.load of a checkpoint, a gzip or tar.gz file) crashes the process
import zlib  # noqa: F401
