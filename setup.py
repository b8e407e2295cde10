"""Package discovery (metadata and dependencies are in pyproject.toml): every package under regbench/, the
top-level Hydra config tree conf/, shipped inside the package as regbench.conf, each with its YAML files, and
regbench's Hydra sweeper plugin."""
from setuptools import find_packages, setup

setup(
    # and the sweeper behind `regbench reproduce` (Hydra finds plugins only in the hydra_plugins namespace)
    packages=[*find_packages(include=["regbench", "regbench.*"]), "regbench.conf", "hydra_plugins.regbench_sweeper"],
    package_dir={"regbench.conf": "conf"},
    package_data={"": ["*.yaml"], "regbench.conf": ["**/*.yaml"]},
)
