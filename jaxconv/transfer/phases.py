"""The runs one transfer config asks for: the head alone, then optionally every layer."""

import pathlib

import ml_collections

from jaxconv.transfer.merge import TransferError


def phases(config: ml_collections.ConfigDict, workdir) -> list[tuple[pathlib.Path, object]]:
    """The runs one config asks for, as (workdir, config) pairs in order.

    One run, unless `transfer.finetune_epochs` > 0: then the config's run (typically the head
    alone) goes to `workdir/head`, and a second run fine-tunes every layer for
    `finetune_epochs` at `finetune_learning_rate` from the first run's last checkpoint, in
    `workdir/finetune`.
    """
    workdir = pathlib.Path(workdir)
    options = config.transfer
    if options.finetune_epochs <= 0:
        return [(workdir, config)]
    if not options.source:
        raise TransferError(
            "transfer.finetune_epochs needs pretrained weights: set transfer.source "
            "('torchvision:<file>' or 'checkpoint:<workdir>')"
        )
    head = workdir / "head"
    finetune = config.copy_and_resolve_references()
    finetune.transfer.source = f"checkpoint:{head}"
    finetune.transfer.dont_load = ()  # the head trained in the first phase is kept
    finetune.transfer.trainable = ()
    finetune.transfer.finetune_epochs = 0.0
    finetune.num_epochs = options.finetune_epochs
    finetune.learning_rate = options.finetune_learning_rate
    return [(head, config), (workdir / "finetune", finetune)]
