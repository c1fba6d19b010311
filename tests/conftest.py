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

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", platform.CPU_XLA_FLAGS)
    + " --xla_force_host_platform_device_count=8"
)
