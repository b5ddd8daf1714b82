"""What machine a figure was measured on: printed by every benchmark beside its figures."""

from __future__ import annotations

import os
import platform

#: Vector extensions that change the speed of our kernels: int8 matmuls (ONNX Runtime) run
#: several times faster with VNNI, fp32 ones with AVX-512. Virtual machines often name the CPU
#: only "AMD EPYC", so family/model and these flags tell two machines apart.
_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                k, _, v = line.partition(":")
                info.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    if info.get("model name"):
        cpu = info["model name"]
        if info.get("cpu family") and info.get("model"):
            cpu += f" (family {info['cpu family']} model {info['model']})"
        flags = [f for f in _FLAGS if f in info.get("flags", "").split()]
        cpu += f" [{' '.join(flags) or 'no AVX2'}]"
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
        gpu += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}{gpu}; Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}"
    )


if __name__ == "__main__":
    print(describe())
