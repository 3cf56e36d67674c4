"""A family's datasets as the host arrays the engine's programs read: stacked along a leading dataset axis,
padded to common shapes (NumPy, once, never inside jit)."""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from memjax.data.dataset import Dataset

SPLITS = ("train", "valid", "test")


def occupancy(ds: Dataset) -> int:
    """The most statements any story of ``ds`` holds in memory (at least 1)."""
    return max(1, max(int((s.story != 0).sum(1).max(initial=0)) for s in (ds.train, ds.valid, ds.test)))


def _pad(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.pad(a, [(0, t - s) for s, t in zip(a.shape, shape)])


def family_arrays(models: Sequence, datasets: Sequence[Dataset], memory: int, vocab_size: int,
                  pretrained: Sequence[tuple] | None = None, freeze: bool = False) -> dict:
    """The datasets (each read by its own model's :meth:`~memjax.models.base.Model.inputs`) as stacked,
    padded host arrays, leading axis = dataset: each model's inputs, ``answers`` (the family's ``vocab_size``
    words, True for the dataset's own), the splits' stories cut to ``memory`` slots, their questions,
    answers, sizes ``n`` and (models with ``traits.uses_support``) supporting slots, optional pretrained
    word vectors, and ``eval``: every split's stories and questions in one array (one evaluation program)."""
    per = []
    for i, (model, ds) in enumerate(zip(models, datasets)):
        entry = {**model.inputs(ds.sentences, ds.vocab.words),
                 "answers": np.arange(vocab_size) < model.cfg.vocab_size}
        if pretrained is not None:
            rows, covered = pretrained[i]
            entry.update(pretrained=np.asarray(rows, np.float32), covered=np.asarray(covered, bool))
            if freeze:
                entry["frozen"] = np.asarray(covered, bool)
        for name in SPLITS:
            split = getattr(ds, name)
            entry[name] = {"story": split.story[:, :memory], "query": model.query_inputs(split.query),
                           "answer": split.answer, "n": np.int32(len(split))}
            if model.traits.uses_support:  # supporting facts' slots (strong supervision)
                entry[name]["supporting"] = np.where(split.supporting < memory, split.supporting, -1)
        per.append(entry)
    data = jax.tree.map(lambda *xs: np.stack([_pad(x, tuple(np.max([y.shape for y in xs], axis=0))) for x in xs])
                        if np.ndim(xs[0]) else np.array(xs), *per)
    data["eval"] = {k: np.concatenate([data[name][k] for name in SPLITS], axis=1) for k in ("story", "query")}
    return data
