"""Exporting a trained run: its variables for jaxconv, or a StableHLO program for anyone.

`export_run` (format 'jaxconv') writes `config.json`, `model.json` (the model card:
task, input shape, outputs, class names, normalisation) and the evaluation variables, which
`jaxconv.workdir.restore` reads as it reads a workdir. `export_stablehlo` (format
'stablehlo') writes the model card, the inference function serialised by `jax.export` with
its weights inside (`model.stablehlo`), and `load.py`, a loader that needs only jax and numpy.
The function takes images as float32 pixel values on the 0-255 scale, NHWC, and applies the
training normalisation itself; its batch is polymorphic, and its height and width too where
the model allows any size.
"""

import pathlib
import shutil

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.errors import ConfigError
from jaxconv.workdir import files, restore
from jaxconv.workdir.checkpoint import read_state

FORMATS = ("jaxconv", "stablehlo")
STABLEHLO_PROGRAM = "model.stablehlo"
LOADER = pathlib.Path(__file__).with_name("stablehlo_loader.py")


def _prepare(workdir: pathlib.Path, out: pathlib.Path) -> dict:
    """The run's model card, after checking that `workdir` is a run and `out` lies outside."""
    restore.load_config(workdir)  # a clear error if workdir is not a run
    if out.resolve() == workdir.resolve() or workdir.resolve() in out.resolve().parents:
        raise ConfigError(
            f"--out {out} is the workdir {workdir} or inside it; export to a folder of its own."
        )
    return restore.model_card(workdir)


def export_run(
    workdir: str | pathlib.Path,
    out: str | pathlib.Path,
    step: int | None = None,
    dtype=np.float16,
) -> pathlib.Path:
    """Writes the run's `config.json`, its model card and its evaluation variables (newest
    checkpoint, or `step`) to the folder `out`, floating-point values stored as `dtype`
    (float16 halves a float32 model; `restore.load_run` gives them back as float32).
    Returns the variables' file."""
    workdir, out = pathlib.Path(workdir), pathlib.Path(out)
    card = _prepare(workdir, out)
    state = read_state(workdir, step)
    variables = jax.tree.map(np.asarray, restore.evaluation_variables(state))
    stored = jax.tree.map(
        lambda x: x.astype(dtype) if np.issubdtype(x.dtype, np.floating) else x, variables
    )
    out.mkdir(parents=True, exist_ok=True)
    files.write_text(out / "config.json", (workdir / "config.json").read_text())
    files.write_json(out / restore.MODEL_CARD, {**card, "step": int(state["step"])})
    path = files.refuse_link(out / restore.EXPORTED_VARIABLES)
    files.write_bytes(path, flax.serialization.msgpack_serialize(stored))
    return path


def export_stablehlo(
    workdir: str | pathlib.Path,
    out: str | pathlib.Path,
    step: int | None = None,
    platforms: tuple[str, ...] | None = None,
) -> pathlib.Path:
    """Writes the run's inference function as StableHLO with its weights (`model.stablehlo`),
    its model card and `load.py` to `out`; returns the program's path. `platforms` (e.g.
    ('cpu', 'cuda')) are those it is lowered for; by default this machine's."""
    workdir, out = pathlib.Path(workdir), pathlib.Path(out)
    card = _prepare(workdir, out)
    run = restore.load_run(workdir, card["num_outputs"], step)
    mean = jnp.asarray(card["mean"], jnp.float32)
    std = jnp.asarray(card["std"], jnp.float32)

    def infer(pixels):
        images = (pixels * (1 / 255) - mean) / std
        outputs = run.model.apply(run.variables, images, train=False)
        return outputs.astype(jnp.float32)

    exported, polymorphic = _export(infer, card["image_shape"], platforms)
    out.mkdir(parents=True, exist_ok=True)
    path = files.refuse_link(out / STABLEHLO_PROGRAM)
    files.write_bytes(path, bytes(exported.serialize()))
    card = {
        **card,
        "step": run.step,
        "input": {"layout": "NHWC", "pixels": "float32, 0-255", "polymorphic": polymorphic},
        "platforms": list(exported.platforms),
    }
    files.write_json(out / restore.MODEL_CARD, card)
    shutil.copyfile(LOADER, files.refuse_link(out / "load.py"))
    return path


def _export(infer, image_shape, platforms) -> tuple[jax.export.Exported, list[str]]:
    """`infer` exported with a symbolic batch, and symbolic height and width where the model
    traces at any size (global pooling, 'SAME' convolutions); else at the trained size."""
    height, width, channels = image_shape
    options = {"platforms": tuple(platforms)} if platforms else {}

    def exported(spec: str) -> jax.export.Exported:
        argument = jax.ShapeDtypeStruct(jax.export.symbolic_shape(spec), jnp.float32)
        return jax.export.export(jax.jit(infer), **options)(argument)

    try:
        return exported(f"batch, height, width, {channels}"), ["batch", "height", "width"]
    except Exception:  # noqa: BLE001 - the model needs a concrete size (it flattens, say)
        return exported(f"batch, {height}, {width}, {channels}"), ["batch"]
