"""Settings that Paddle's libraries read once, so they are made from the config before Paddle is first imported."""
from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import DictConfig

CPUINFO = Path("/proc/cpuinfo")


def prepare(trainer: DictConfig, cpuinfo: Path = CPUINFO) -> None:
    """trainer.mkl_amd_avx2 on an AMD CPU with AVX2: MKL_DEBUG_CPU_TYPE=5 (unless the environment sets it already).

    Paddle's CPU convs and matmuls are MKL 2019 GEMMs, and that MKL picks generic kernels on non-Intel CPUs; 5 makes
    it take its AVX2 ones (3.2x faster GEMMs here). MKL reads the variable at its first call: hence before Paddle."""
    if trainer.mkl_amd_avx2 and "MKL_DEBUG_CPU_TYPE" not in os.environ and _amd_with_avx2(cpuinfo):
        os.environ["MKL_DEBUG_CPU_TYPE"] = "5"


def _amd_with_avx2(cpuinfo: Path) -> bool:
    try:
        text = cpuinfo.read_text()
    except OSError:  # not Linux: leave MKL alone
        return False
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return bool(vendor and vendor.group(1) == "AuthenticAMD" and flags and "avx2" in flags.group(1).split())
