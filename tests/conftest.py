"""Test-wide setup: 8 simulated CPU devices, so every training test runs the sharded path.

This must run before JAX initialises its backend, hence here and not in a fixture.
"""

import os

from jaxconv import platform

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", platform.CPU_XLA_FLAGS)
    + " --xla_force_host_platform_device_count=8"
)
