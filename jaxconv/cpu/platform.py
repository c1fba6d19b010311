"""Facts about the machine, and the XLA and allocator settings jaxconv chooses for it."""

import ctypes
import os
import pathlib
import platform

# On CPU, jaxlib 0.10's YNNPACK fusion takes over every convolution, and its kernel gradient
# is several times slower than XLA's own; excluding individual convolutions from it speeds up
# whole training steps (measured in benchmarks/train_throughput.py).
CPU_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"

# The widest vector instructions, as /proc/cpuinfo's flags name them, widest first.
VECTOR_EXTENSIONS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("neon", "NEON"))


def configure_xla(environ=os.environ) -> str | None:
    """Sets jaxconv's CPU XLA flags unless the user set XLA_FLAGS; returns what it did.

    Must run before JAX initialises its backend (i.e. before the first computation).
    """
    if "XLA_FLAGS" in environ:
        return None
    environ["XLA_FLAGS"] = CPU_XLA_FLAGS
    return f"XLA_FLAGS={CPU_XLA_FLAGS} (set by jaxconv for CPU speed; set XLA_FLAGS to override)"


# glibc's mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Freed memory at the heap's top beyond this goes back to the system (mallopt takes an int).
_KEPT_BYTES = 2**31 - 1
_freed_memory_kept = False  # whether keep_freed_memory() took effect in this process


def keep_freed_memory(environ=os.environ) -> str | None:
    """Has glibc's malloc serve every block from its heap and keep freed memory for reuse,
    unless the user tuned malloc (GLIBC_TUNABLES or a MALLOC_* variable); returns what it did.

    XLA:CPU allocates a compiled step's temporary buffer (hundreds of MB for ResNet-18) at
    every execution. glibc gives blocks over 32 MB a fresh mapping and unmaps them when freed,
    so the kernel faults in and zero-fills every page of it at every step. The cost: the
    process keeps its peak memory (up to 2 GiB of it free at the heap's top) rather than
    returning it to the system. benchmarks/train_throughput.py runs its steps with this
    setting, as launch.py does. Only glibc has these settings; elsewhere this does nothing and
    returns None.
    """
    tuned = "glibc.malloc." in environ.get("GLIBC_TUNABLES", "") or any(
        name.startswith("MALLOC_") for name in environ
    )
    if tuned or platform.libc_ver()[0] != "glibc":
        return None
    global _freed_memory_kept
    libc = ctypes.CDLL(None)
    if not (libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, _KEPT_BYTES)):
        return None
    _freed_memory_kept = True
    return (
        "malloc: large blocks from the heap, freed memory kept for the next step (set by "
        "jaxconv for CPU speed; set GLIBC_TUNABLES or a MALLOC_* variable to override)"
    )


def freed_memory_kept() -> bool:
    """Whether keep_freed_memory() took effect in this process: timings measured with it and
    without it differ (jaxconv.cpu.planning keeps their choices apart)."""
    return _freed_memory_kept


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name, with its family and model numbers and widest vector extension.

    Names such as 'AMD EPYC' or 'Intel(R) Xeon(R) Processor' omit the generation, which the
    numbers give; the extension says which kernels the machine can run. `cpuinfo` is the text
    of /proc/cpuinfo (read when not given); without one, the platform's description.
    """
    if cpuinfo is None:
        path = pathlib.Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    fields = {}
    for line in cpuinfo.splitlines():  # the first processor's fields
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    details = []
    if "cpu family" in fields:
        details.append(f"family {fields['cpu family']} model {fields.get('model', '?')}")
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    details += [name for flag, name in VECTOR_EXTENSIONS if flag in flags][:1]
    return fields["model name"] + (f" ({', '.join(details)})" if details else "")
