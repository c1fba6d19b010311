"""Merging pretrained variables into a fresh model, reading them from jaxconv checkpoints, and
the two phases of one transfer config."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from jaxconv import models, transfer
from jaxconv.configs import base
from jaxconv.train import state as state_lib

# A small ImageNet-layout ResNet: stem, projection shortcuts, batch norm and a head.
SMALL = dict(stage_sizes=(1, 1), stage_widths=(4, 8))
INPUT_SHAPE = (1, 32, 32, 3)


@functools.cache
def initialised(num_classes, seed):
    model = models.create("resnet18", num_classes=num_classes, **SMALL)
    images = jnp.zeros(INPUT_SHAPE)
    key = jax.random.key(seed, impl="rbg")
    return jax.device_get(jax.jit(lambda k: model.init(k, images, train=False))(key))


def init(num_classes=10, seed=0):
    """Fresh variables of the small model; a copy, so that tests may edit it."""
    return jax.tree.map(np.copy, initialised(num_classes, seed))


def test_copies_everything_but_dont_load():
    fresh, pretrained = init(seed=0), init(seed=1)
    merged = transfer.merge(fresh, pretrained, dont_load=("head/.*",))
    assert jax.tree.structure(merged) == jax.tree.structure(fresh)
    for name, leaf in transfer.flatten(merged).items():
        source = fresh if name.startswith("params/head/") else pretrained
        np.testing.assert_array_equal(leaf, transfer.flatten(source)[name], err_msg=name)


def test_head_of_another_size_is_replaced():
    fresh, pretrained = init(num_classes=3), init(num_classes=10, seed=1)
    merged = transfer.merge(fresh, pretrained)
    assert merged["params"]["head"]["kernel"].shape == (8, 3)


def test_default_replaces_a_unets_auxiliary_heads_too():
    """A deeply supervised U-Net's auxiliary heads map to the classes as its head does: by
    default neither is loaded, so the pretrained model fits another class count."""

    def unet_init(num_classes, seed):
        model = models.create(
            "unet_same", num_classes=num_classes, depth=3, width=4, auxiliary_heads=2
        )
        images = jnp.zeros((1, 16, 16, 1))
        params = jax.jit(lambda key: model.init(key, images, train=False)["params"])
        return jax.device_get({"params": params(jax.random.key(seed))})

    fresh, pretrained = unet_init(3, seed=0), unet_init(11, seed=1)
    merged = transfer.flatten(transfer.merge(fresh, pretrained))
    replaced = {name for name in merged if name.split("/")[1].startswith(("head", "auxiliary"))}
    assert {name.split("/")[1] for name in replaced} == {"head", "auxiliary1", "auxiliary2"}
    for name, leaf in merged.items():
        source = fresh if name in replaced else pretrained
        np.testing.assert_array_equal(leaf, transfer.flatten(source)[name], err_msg=name)
    assert base.get_config().transfer.dont_load == transfer.CLASS_LAYERS


def test_every_mismatch_is_reported_by_name():
    fresh, pretrained = init(num_classes=3), init(num_classes=10, seed=1)
    del pretrained["batch_stats"]["stem"]["norm"]["var"]
    pretrained["params"]["extra"] = {"kernel": np.zeros((2, 2))}
    with pytest.raises(transfer.TransferError) as error:
        transfer.merge(fresh, pretrained, dont_load=())
    lines = str(error.value).splitlines()[1:]
    assert sorted(line.strip() for line in lines) == [
        "missing batch_stats/stem/norm/var (4,)",
        "shape of params/head/bias: pretrained (10,), model (3,)",
        "shape of params/head/kernel: pretrained (8, 10), model (8, 3)",
        "unexpected params/extra/kernel (2, 2)",
    ]


def test_dont_load_also_covers_unexpected_names():
    fresh, pretrained = init(), init(seed=1)
    pretrained["params"]["extra"] = {"kernel": np.zeros((2, 2))}
    transfer.merge(fresh, pretrained, dont_load=("head/.*", "extra/.*"))


def test_bad_pattern_is_named():
    with pytest.raises(transfer.TransferError, match=r"dont_load pattern '\(' is not a regex"):
        transfer.merge({}, {}, dont_load=("(",))


def save_checkpoint(workdir, step, state):
    """A checkpoint as `Checkpointer` lays it out: `checkpoints/<step>/state`."""
    checkpointer = ocp.StandardCheckpointer()
    fields = ("step", "params", "batch_stats", "opt_state", "rng", "ema_params")
    checkpointer.save(
        workdir / "checkpoints" / str(step) / "state",
        {field: getattr(state, field) for field in fields},
    )
    checkpointer.wait_until_finished()


def small_state(tx, ema=False):
    model = models.create("resnet18", num_classes=3, **SMALL)
    key = jax.random.key(0, impl="rbg")
    return jax.jit(lambda: state_lib.create(model, tx, INPUT_SHAPE, key, ema=ema))()


@pytest.mark.parametrize("ema", [False, True])
def test_from_checkpoint_reads_a_frozen_run(tmp_path, ema):
    # A head-only run's optimizer state holds empty nodes for the frozen parameters; the
    # checkpoint must still read back.
    state = small_state(transfer.freeze(optax.adam(1e-3), ("head/.*",)), ema=ema)
    state = state.replace(ema_params=jax.tree.map(lambda x: x + 1, state.ema_params))
    save_checkpoint(tmp_path, 7, state)
    variables = transfer.load(f"checkpoint:{tmp_path}", "resnet18")
    expected = state.ema_params if ema else state.params
    jax.tree.map(np.testing.assert_array_equal, variables["params"], expected)
    jax.tree.map(np.testing.assert_array_equal, variables["batch_stats"], state.batch_stats)
    assert set(variables) == {"params", "batch_stats"}


def test_bad_source_lists_the_forms():
    with pytest.raises(transfer.TransferError, match="'checkpoint:<workdir>'"):
        transfer.load("imagenet", "resnet18")


def test_load_into_state_restarts_optimizer_and_average():
    state = small_state(optax.adam(1e-3), ema=True)
    state = state.replace(opt_state=jax.tree.map(lambda x: x + 1, state.opt_state))
    pretrained = init(num_classes=10, seed=1)
    loaded = transfer.load_into_state(state, pretrained)
    stage = loaded.params["stage1"]["block1"]["conv1"]["kernel"]
    np.testing.assert_array_equal(
        stage, pretrained["params"]["stage1"]["block1"]["conv1"]["kernel"]
    )
    np.testing.assert_array_equal(loaded.params["head"]["kernel"], state.params["head"]["kernel"])
    jax.tree.map(np.testing.assert_array_equal, loaded.ema_params, loaded.params)
    jax.tree.map(np.testing.assert_array_equal, loaded.opt_state, state.tx.init(loaded.params))


def transfer_config(**options):
    """The base config with the transfer block as base.py declares it."""
    config = base.get_config()
    if "transfer" not in config:
        with config.unlocked():
            config.transfer = ml_collections.ConfigDict(
                dict(
                    source="",
                    dont_load=("head/.*",),
                    trainable=(),
                    finetune_epochs=0.0,
                    finetune_learning_rate=1e-4,
                )
            )
    config.transfer.update(options)
    return config


def test_one_phase_without_finetuning(tmp_path):
    config = transfer_config(source="torchvision:w.pth", trainable=("head/.*",))
    assert transfer.phases(config, tmp_path) == [(tmp_path, config)]


def test_head_then_finetune(tmp_path):
    config = transfer_config(
        source="torchvision:w.pth",
        trainable=("head/.*",),
        finetune_epochs=2.0,
        finetune_learning_rate=1e-5,
    )
    (head_dir, head), (finetune_dir, finetune) = transfer.phases(config, tmp_path)
    assert (head_dir, head) == (tmp_path / "head", config)
    assert finetune_dir == tmp_path / "finetune"
    assert finetune.transfer.source == f"checkpoint:{tmp_path / 'head'}"
    assert (finetune.transfer.dont_load, finetune.transfer.trainable) == ((), ())
    assert (finetune.num_epochs, finetune.learning_rate) == (2.0, 1e-5)
    assert config.transfer.trainable == ("head/.*",)  # the first phase's config is untouched


def test_finetune_needs_a_source(tmp_path):
    with pytest.raises(transfer.TransferError, match="set transfer.source"):
        transfer.phases(transfer_config(finetune_epochs=1.0), tmp_path)
