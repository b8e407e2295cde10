"""The Hydra config tree, shipped inside the package as regbench.conf (see pyproject.toml)."""
