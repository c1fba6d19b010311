"""Facts about the machine, and XLA settings chosen for it before JAX starts."""

import os
import pathlib

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
        import platform

        return platform.processor() or platform.machine()
    details = []
    if "cpu family" in fields:
        details.append(f"family {fields['cpu family']} model {fields.get('model', '?')}")
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    details += [name for flag, name in VECTOR_EXTENSIONS if flag in flags][:1]
    return fields["model name"] + (f" ({', '.join(details)})" if details else "")
