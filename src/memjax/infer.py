"""Answering with a trained model: load it from a run's folder, give it a story and a question.

Examples:
    >>> qa = Answerer.load("runs/task1")                                    # doctest: +SKIP
    >>> a = qa.answer(["Mary went to the kitchen.", "Mary travelled to the office."], "Where is Mary?")
    >>> a.answer, round(a.probability, 2), a.hops[0][0]                      # doctest: +SKIP
    ('office', 0.98, (1, 'Mary travelled to the office.', 0.93))

Words the model never saw are left out of its input and reported in ``Answer.unknown``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from memjax.data.babi import words
from memjax.data.dataset import UNK, Vocab
from memjax.models import model_for
from memjax.train.checkpoint import CheckpointError, load_model


@dataclasses.dataclass
class Answer:
    """What the model says about one question.

    Attributes:
        answer: the predicted word.
        probability: its softmax probability.
        hops: per hop, the story's statements as (index in the story, text, attention weight),
            highest weight first; statements outside the memory window are left out.
        unknown: words of the story or question the model has never seen (ignored).
        top: the five most probable answers as (word, probability).
    """

    answer: str
    probability: float
    hops: list[list[tuple[int, str, float]]]
    unknown: list[str]
    top: list[tuple[str, float]]

    def to_dict(self) -> dict:
        return {"answer": self.answer, "probability": self.probability, "unknown_words": self.unknown,
                "top": [{"word": w, "probability": p} for w, p in self.top],
                "hops": [[{"index": i, "sentence": s, "weight": w} for i, s, w in hop] for hop in self.hops]}


def _model(meta: dict):
    """The model a saved entry describes (models saved before the family was recorded are MemN2N)."""
    return model_for(meta.get("family", "memn2n"), meta["model"])


def _model_template(meta: dict):
    return jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), jax.eval_shape(lambda: _model(meta).init(jax.random.key(0))))


def load_models(directory: str | Path) -> dict[str, dict]:
    """Every model saved in a run's folder: ``{label: {"params", "model", "vocab", ...}}``."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"{directory}: no such folder")
    return load_model(directory / "model", _model_template)


class Answerer:
    """A trained model ready to answer questions about new stories."""

    def __init__(self, label: str, model, params: dict, vocab: Vocab, memory_size: int, tasks: Sequence[int] = ()):
        self.label, self.vocab, self.memory_size, self.tasks = label, vocab, memory_size, list(tasks)
        self.model, self.cfg = model, model.cfg
        self.params = jax.tree.map(jnp.asarray, params)
        self._apply = jax.jit(self.model.apply)

    @classmethod
    def load(cls, directory: str | Path, task: int | str | None = None) -> "Answerer":
        """The model of ``task`` in a run's folder (the only one, or the joint model, by default)."""
        models = load_models(directory)
        if task is None:
            if len(models) != 1:
                raise CheckpointError(f"{directory} holds models for tasks {', '.join(sorted(models, key=_order))}: "
                                      "choose one with --task")
            label = next(iter(models))
        else:
            label = str(task)
            if label not in models:
                joint = models.get("joint")
                if joint is not None and (label == "joint" or int(label) in joint["tasks"]):
                    label = "joint"
                else:
                    raise CheckpointError(f"{directory}: no model for task {task} "
                                          f"(it holds {', '.join(sorted(models, key=_order))})")
        m = models[label]
        vocab = Vocab(m["vocab"][2:])
        if vocab.words != m["vocab"]:
            raise CheckpointError(f"{directory}: the saved vocabulary is not in memjax's order")
        if not hasattr(_model(m), "apply"):
            raise CheckpointError(f"{directory}: asking and serving support MemN2N, DMN+ and MemNN models, not "
                                  f"{m.get('family')} (evaluate it with memjax eval)")
        return cls(label, _model(m), m["params"], vocab, int(m["memory_size"]), m.get("tasks", ()))

    def _ids(self, text: str, unknown: list[str]) -> list[int]:
        """Word ids; unknown words are left out, or kept as the unknown word by models that read
        them (MemNN with ``unseen``: by their context)."""
        keep_unknown = getattr(self.cfg, "unseen", False)
        out = []
        for w in words(text):
            if w in self.vocab:
                out.append(self.vocab.id(w))
            else:
                if keep_unknown:
                    out.append(UNK)
                if w not in unknown:
                    unknown.append(w)
        return out

    def answer(self, story: Sequence[str], question: str) -> Answer:
        """Answers ``question`` about ``story`` (statements oldest first; the last ``memory_size`` are read)."""
        unknown: list[str] = []
        query = self._ids(question, unknown)
        if not words(question):
            raise ValueError("the question has no words")
        first = max(0, len(story) - self.memory_size)
        kept = list(range(first, len(story)))
        encoded = [self._ids(s, unknown) for s in story[first:]]
        longest = max([1, len(query)] + [len(s) for s in encoded])
        width = 8
        while width < longest:  # padded to a few shapes, so that new stories rarely recompile
            width *= 2
        # distinct sentences: row 0 empty, then one row per kept statement; slot 0 = most recent
        sentences = np.zeros((self.memory_size + 1, width), np.int32)
        for i, ids in enumerate(encoded):
            sentences[i + 1, : len(ids)] = ids
        slots = np.zeros((self.cfg.memory_size,), np.int32)
        recent = np.arange(len(encoded), 0, -1)[: self.cfg.memory_size]
        slots[: len(recent)] = recent
        q = np.zeros((width,), np.int32)
        q[: len(query)] = query
        if hasattr(self.model, "features"):  # models whose input features are computed on the host (n-grams)
            sentences, q = self.model.features(sentences), self.model.features(q[None])[0]
        logits, attention = self._apply(self.params, jnp.asarray(sentences), jnp.asarray(slots), jnp.asarray(q))
        probs = np.array(jax.nn.softmax(logits))
        probs[0] = 0.0  # padding is never an answer
        order = np.argsort(-probs)
        hops = []
        for p in np.asarray(attention):
            rows = [(kept[row - 1], story[kept[row - 1]], float(p[slot])) for slot, row in enumerate(recent)]
            hops.append(sorted(rows, key=lambda r: -r[2]))
        best = int(order[0])
        return Answer(self.vocab.words[best], float(probs[best]), hops, unknown,
                      [(self.vocab.words[int(i)], float(probs[int(i)])) for i in order[:5]])


def _order(label: str):
    return (0, int(label)) if label.isdigit() else (1, 0)
