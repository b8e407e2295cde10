"""Package discovery (metadata and dependencies are in pyproject.toml): every package under regbench/, and the
top-level Hydra config tree conf/, shipped inside the package as regbench.conf, each with its YAML files."""
from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["regbench", "regbench.*"]), "regbench.conf"],
    package_dir={"regbench.conf": "conf"},
    package_data={"": ["*.yaml"], "regbench.conf": ["**/*.yaml"]},
)
