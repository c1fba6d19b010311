"""The machine's description and the XLA flags jaxconv sets for it."""

from jaxconv import platform

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
