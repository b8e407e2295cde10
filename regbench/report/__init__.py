"""Reports over run folders (tables, plots); reads only what the trainer wrote, never imports it or Paddle.

Nothing is imported here: the sweep callback (report/sweep.py) is loaded by every `regbench train`, which must not pay
for scipy and matplotlib before it trains."""
