"""A workdir whose checkpoints no longer fit the run's config: stop, say so, move nothing."""

import pytest

from jaxconv.errors import ConfigError
from jaxconv.train import loop
from jaxconv.workdir.checkpoint import CheckpointError


def test_checkpoints_of_another_structure_are_refused_and_kept(tmp_path, digits_config):
    loop.run(digits_config(4), tmp_path)
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    changed = digits_config(6)
    changed.optimizer.ema_decay = 0.99  # the saved state has no averaged parameters
    with pytest.raises(ConfigError, match=r"optimizer.ema_decay: 0.0 -> 0.99"):
        loop.run(changed, tmp_path)  # a change of recipe, refused by the config check
    changed.resume_changes = "allow"  # accepted there: the checkpoint still cannot fit
    with pytest.raises(CheckpointError, match=r"fits this run.*new --workdir.*nothing was moved"):
        loop.run(changed, tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before
    assert loop.run(digits_config(6), tmp_path)["resumed_from_step"] == 4  # still resumable
