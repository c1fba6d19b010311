"""Facts about the machine, and XLA settings chosen for it before JAX starts."""

import os
import pathlib

# On CPU, jaxlib 0.10's YNNPACK fusion takes over every convolution, and its kernel gradient
# is several times slower than XLA's own; excluding individual convolutions from it speeds up
# whole training steps (measured in benchmarks/train_throughput.py).
CPU_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def configure_xla(environ=os.environ) -> str | None:
    """Sets jaxconv's CPU XLA flags unless the user set XLA_FLAGS; returns what it did.

    Must run before JAX initialises its backend (i.e. before the first computation).
    """
    if "XLA_FLAGS" in environ:
        return None
    environ["XLA_FLAGS"] = CPU_XLA_FLAGS
    return f"XLA_FLAGS={CPU_XLA_FLAGS} (set by jaxconv for CPU speed; set XLA_FLAGS to override)"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the platform's description."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()
