"""Test-wide setup: 8 simulated CPU devices, so every training test runs the sharded path.

This must run before JAX initialises its backend, hence here and not in a fixture.
"""

import os
import pathlib
import tempfile

from jaxconv import platform

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", platform.CPU_XLA_FLAGS)
    + " --xla_force_host_platform_device_count=8"
)

# Convolution plans measured by one test are reused by the others (every xdist worker of this
# run shares the folder), never read from or written to the user's own cache.
_run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
_cache = pathlib.Path(tempfile.gettempdir()) / f"jaxconv-test-cache-{_run_id}" if _run_id else None
os.environ["JAXCONV_CACHE_DIR"] = str(_cache or tempfile.mkdtemp(prefix="jaxconv-test-cache-"))
