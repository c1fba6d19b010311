"""Test-wide setup: 8 simulated CPU devices, so every training test runs the sharded path.

This must run before JAX initialises its backend, hence here and not in a fixture.
"""

import os
import pathlib
import tempfile

# Convolution plans measured by one test are reused by the others (every xdist worker of this
# run shares the folder), never read from or written to the user's own cache.
_run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
_cache = pathlib.Path(tempfile.gettempdir()) / f"jaxconv-test-cache-{_run_id}" if _run_id else None
_cache = _cache or pathlib.Path(tempfile.mkdtemp(prefix="jaxconv-test-cache-"))
os.environ["JAXCONV_CACHE_DIR"] = str(_cache)
# XLA's compiled programs are shared the same way, with the launch.py subprocesses too: the
# fault, resume and device-count tests compile the same LeNet-5 steps run after run. JAX reads
# these when it is imported, so they are set before anything imports it.
os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_cache / "xla")
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

from jaxconv import platform  # noqa: E402  (after the variables above)

# Tests compile far more than they run. With LLVM's optimisations at level 1 instead of the
# default, XLA compiles a model's random initialisers ~5x faster (a small U-Net's initial
# variables: 28 s against 5.4 s, bit for bit the same values): the suite took 15.6 minutes
# instead of 18.4 on a 2-core Zen 1. Not level 0: jaxlib 0.10.2 miscompiles there (LeNet-5's
# gradient with its first convolution as per-tap products comes out wrong; right at 1 and 2).
# Subprocesses that set their own device count keep the rest (`XLA_FLAGS_WITHOUT_DEVICES`).
os.environ["XLA_FLAGS_WITHOUT_DEVICES"] = (
    os.environ.get("XLA_FLAGS", platform.CPU_XLA_FLAGS) + " --xla_backend_optimization_level=1"
)
os.environ["XLA_FLAGS"] = (
    os.environ["XLA_FLAGS_WITHOUT_DEVICES"] + " --xla_force_host_platform_device_count=8"
)
