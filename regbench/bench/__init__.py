"""`regbench bench`: how fast a configuration trains and evaluates. The timing is in .task, the sweep's table in
.table; this module has what the command line needs before Paddle loads."""
from __future__ import annotations

# The command's Hydra settings (a user override of the same key wins): the bench group's defaults; no .hydra/
# copy of the config, so a run leaves only Hydra's bench.log (a sweep also its multirun.yaml) in outputs/bench/;
# no sweep report, which is made of training runs.
HYDRA_OVERRIDES = (
    "+bench=default",
    "hydra.job.name=bench",
    "hydra.output_subdir=null",
    "hydra.run.dir=outputs/bench/${now:%Y-%m-%d}/${now:%H-%M-%S.%f}",
    "hydra.sweep.dir=outputs/bench/${now:%Y-%m-%d}/${now:%H-%M-%S.%f}",
    "~hydra.callbacks.sweep_report",
)


def with_command_overrides(overrides: list[str]) -> list[str]:
    """The user's command line plus HYDRA_OVERRIDES, except those whose key the user sets."""
    keys = {arg.split("=", 1)[0].lstrip("+~") for arg in overrides if "=" in arg}
    return [*overrides, *(o for o in HYDRA_OVERRIDES if o.split("=", 1)[0].lstrip("+~") not in keys)]
