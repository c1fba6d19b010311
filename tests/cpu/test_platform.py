"""The machine's description and the XLA and allocator settings jaxconv makes for it."""

import os
import platform as python_platform
import subprocess
import sys

import pytest

from jaxconv.cpu import platform

ZEN5 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw

processor\t: 1
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
"""
ZEN1 = ZEN5.replace("26", "23").replace("model\t\t: 2", "model\t\t: 1").replace(" avx512f", "")
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd neon\n"


def test_the_cpu_is_named_with_its_generation_and_vector_width():
    assert platform.cpu_model(ZEN5) == "AMD EPYC (family 26 model 2, AVX-512)"
    assert platform.cpu_model(ZEN1) == "AMD EPYC (family 23 model 1, AVX2)"
    no_flags = "model name\t: Some CPU\n"
    assert platform.cpu_model(no_flags) == "Some CPU"


def test_a_cpuinfo_without_a_model_name_falls_back_to_the_platform():
    assert platform.cpu_model(ARM)  # a non-empty description, not an error
    assert platform.cpu_model("") == platform.cpu_model(ARM)


def test_jaxconv_sets_its_flags_only_when_the_user_set_none():
    environ = {}
    message = platform.configure_xla(environ)
    assert environ["XLA_FLAGS"] == platform.CPU_XLA_FLAGS and "override" in message
    mine = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    assert platform.configure_xla(mine) is None
    assert mine == {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}


# Touches a freshly allocated 64 MiB block three times, in a process of its own (the setting
# lasts for the process), after jaxconv's allocator setting when asked: its note, then the
# page faults each block took.
_TOUCH_FRESH_BLOCKS = """
import ctypes, resource, sys
from jaxconv.cpu import platform
print(platform.keep_freed_memory() if sys.argv[1] == "set" else None)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 64 * 2**20
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def touch_fresh_blocks(setting: str, **malloc_environment) -> tuple[str, list[int]]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name != "GLIBC_TUNABLES" and not name.startswith("MALLOC_")
    }
    result = subprocess.run(
        [sys.executable, "-c", _TOUCH_FRESH_BLOCKS, setting],
        env={**environment, **malloc_environment},
        capture_output=True,
        text=True,
        check=True,
    )
    note, *faults = result.stdout.strip().split("\n")
    return note, [int(count) for count in faults]


glibc_only = pytest.mark.skipif(
    python_platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings"
)


# Counts relative to the first block's: with transparent huge pages a block takes one fault
# per 2 MiB page instead of one per 4 KiB page.
def faulted_in_afresh(faults: list[int]) -> bool:
    return faults[0] > 0 and min(faults[1:]) >= faults[0] // 2


@glibc_only
def test_freed_blocks_are_reused_without_their_pages_faulted_in_again():
    note, faults = touch_fresh_blocks("set")
    assert "malloc" in note and "override" in note
    assert faults[0] > 0 and max(faults[1:]) < max(faults[0] // 10, 1)


@glibc_only
def test_without_the_setting_every_block_is_faulted_in():
    note, faults = touch_fresh_blocks("unset")
    assert note == "None" and faulted_in_afresh(faults)


@glibc_only
def test_a_user_who_tuned_malloc_keeps_their_settings():
    for tuned in (
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"},
        {"MALLOC_ARENA_MAX": "2"},
    ):
        note, faults = touch_fresh_blocks("set", **tuned)
        assert note == "None" and faulted_in_afresh(faults)
