"""A study from one command: the stages of `regbench reproduce` (pipeline), the runs of a sweep scored as an article
declares (score), and its report folder — README, a table per metric, the curves, pooled reliability diagrams and the
corruption figure (report, readme)."""
