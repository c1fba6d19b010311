"""`num_eval_steps` limits evaluation to the split's first batches; -1 reads all of them."""

import pytest

from jaxconv.data import pipeline
from jaxconv.train import loop


@pytest.mark.parametrize("num_eval_steps, expected", [(2, 2), (-1, None)])
def test_evaluation_reads_only_the_first_batches(
    num_eval_steps, expected, tmp_path, monkeypatch, digits_config
):
    read = []
    original = pipeline.eval_batches

    def counting(source, **kwargs):
        for batch in original(source, **kwargs):
            read.append(len(batch["mask"]))
            yield batch
        read.append("end")

    monkeypatch.setattr(pipeline, "eval_batches", counting)
    config = digits_config()
    config.num_eval_steps = num_eval_steps
    summary = loop.run(config, tmp_path)
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    if expected is None:  # every batch of the split, to its end
        assert read[-1] == "end" and len(read) - 1 >= 3
    else:
        assert read == [64] * expected
