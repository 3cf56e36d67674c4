"""Length buckets (``--buckets``): each training batch holds stories of one length class and is
computed at that length; the epochs still see every row at most once, in N // B batches."""

import dataclasses

import jax
import numpy as np
import pytest

from memjax.data.dataset import load_babi
from memjax.models import DMNPlus, DMNPlusConfig
from memjax.train.buckets import bucketed_order
from memjax.train.engine import Trainer, TrainConfig, length_plan, steps_per_epoch
from memjax.train.recipes import DMN_PLUS_10K


def _stories(counts, m):
    """(N, m) stories whose row i fills its first counts[i] slots (slot 0 the most recent)."""
    counts = np.asarray(counts)
    return np.where(np.arange(m)[None] < counts[:, None], 1 + np.arange(len(counts))[:, None], 0)


def _check_partition(plan, story, batch):
    count = (story != 0).sum(1)
    rows = np.concatenate(plan.members)
    assert sorted(rows.tolist()) == list(range(len(story)))  # every row in exactly one bucket
    for k, members in enumerate(plan.members):
        low = plan.lengths[k - 1] if k else 0
        fits = np.maximum(count[members], 1)  # an empty story goes with the shortest
        assert np.all(fits <= plan.lengths[k]) and np.all(fits > low)
        assert plan.batches[k] == len(members) // batch
    assert sum(plan.batches) + plan.pooled == len(story) // batch
    assert len(plan.steps) == len(story) // batch


def test_length_plan_uses_the_distinct_lengths_when_few():
    counts = [2] * 7 + [4] * 5 + [6] * 9 + [9] * 3  # 24 stories; memory 10
    story = _stories(counts, 10)
    plan = length_plan(story, 4, 5)
    assert plan.lengths == (2, 4, 6, 10)  # the longest bucket is the whole memory
    assert plan.batches == (1, 1, 2, 0)
    # left over: 3 of length 2, 1 of 4, 1 of 6, 3 of 9: 8 rows, 2 pooled batches at length 10
    assert plan.pooled == 2 and plan.pool == 3
    assert plan.steps.tolist() == [0, 1, 2, 2, 3, 3]
    _check_partition(plan, story, 4)


def test_length_plan_uses_quantiles_when_many_lengths():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 31, 500)  # 31 distinct lengths (an empty story among them), memory 30
    story = _stories(counts, 30)
    plan = length_plan(story, 32, 4)
    assert len(plan.lengths) <= 4 and plan.lengths[-1] == 30
    assert list(plan.lengths) == sorted(set(plan.lengths))
    _check_partition(plan, story, 32)
    # no pooled leftovers: every bucket's rows left over are pooled at the longest such bucket
    assert plan.pool == max(k for k, r in enumerate(plan.members) if len(r) % 32)


@pytest.fixture(scope="module")
def task1(data_root):
    return load_babi([1], "en", str(data_root))[0]


def test_bucketed_epochs_draw_rows_once_in_batches_of_their_length(task1):
    cfg = dataclasses.replace(DMN_PLUS_10K, epochs=2, buckets=5)
    trainer = Trainer(DMNPlus(DMNPlusConfig(vocab_size=len(task1.vocab), dim=8)), cfg, task1)
    plan = trainer.plan
    assert plan.lengths == (2, 4, 6, 8, 10)  # bAbI task 1: a question after every 2 statements
    count = (trainer.data["train"]["story"][0] != 0).sum(1)
    draw = jax.jit(jax.vmap(lambda key, epoch: bucketed_order(plan, trainer.batch_size, key, epoch), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(1), 2)
    (order, buckets), (_, buckets2) = draw(keys, 0), draw(keys, 1)
    order, buckets = np.asarray(order), np.asarray(buckets)
    steps = steps_per_epoch(len(task1.train), trainer.batch_size)
    assert order.shape == (2, steps, trainer.batch_size)
    for run in range(2):
        rows = order[run].ravel()
        assert len(set(rows.tolist())) == len(rows)  # no row twice in an epoch
        need = count[order[run]].max(1)  # each batch's longest story fits its bucket's length
        assert np.all(need <= np.asarray(plan.lengths)[buckets[run]])
    # the buckets' order is the same for both runs (one branch per step under vmap); their rows differ
    np.testing.assert_array_equal(buckets[0], buckets[1])
    assert not np.array_equal(order[0], order[1])
    assert sorted(buckets[0].tolist()) == sorted(plan.steps.tolist())
    assert not np.array_equal(np.asarray(buckets2)[0], buckets[0])  # another epoch, another order


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_bucketed_training_branches_per_step_and_learns(data_root):
    """A real run: DMN+ (d=32) on bAbI-10k task 1, 2 runs at once, 2 epochs with --buckets 3. The
    compiled program branches on the step's length (a conditional), rather than computing every
    length and selecting one."""
    ds = load_babi([1], "en-10k", str(data_root))[0]
    cfg = dataclasses.replace(DMN_PLUS_10K, epochs=2, patience=50, buckets=3)
    trainer = Trainer(DMNPlus(DMNPlusConfig(vocab_size=len(ds.vocab), dim=32)), cfg, ds)
    fit = trainer.fit([0, 1])
    assert "conditional" in trainer.programs["train"].as_text()
    assert np.all(fit.errors["test"] <= 1.0), fit.errors


def test_buckets_need_one_dataset_per_family(task1):
    cfg = dataclasses.replace(DMN_PLUS_10K, epochs=1, buckets=3)
    model = DMNPlus(DMNPlusConfig(vocab_size=len(task1.vocab), dim=8))
    with pytest.raises(ValueError, match="one dataset per family"):
        Trainer(model, cfg, [task1, task1])
    with pytest.raises(ValueError, match="buckets must be at least 0"):
        TrainConfig(buckets=-1)
