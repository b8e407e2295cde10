"""The Hydra config tree, shipped inside the package as regbench.conf (see setup.py's package_dir)."""
