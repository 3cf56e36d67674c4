"""An adapter that trains a Flax NNX model through memjax's engine: the module becomes a
:class:`memjax.models.base.Model`, its parameters a pure pytree the engine vmaps over seeds.

    from memjax.nn.adapter import NNXConfig, NNXModel
    model = NNXModel(NNXConfig(len(ds.vocab), ds.memory_size, build=MyQA, options=(("dim", 20),)))
    fit = memjax.Trainer(model, memjax.TrainConfig(optimizer="adam", ...), ds).fit(seeds=[0, 1, 2])

The module is built as ``build(vocab_size, memory_size, rngs=nnx.Rngs(params=key), **options)`` and
called as ``module(sentences, story, query)``: the distinct sentences' word ids (U, L) (row 0 empty),
the stories (B, M) as rows of ``sentences`` per memory slot (slot 0 the most recent; M at most
``memory_size``) and the questions' word ids (B, Q); it returns answer logits (B, V), or
``(logits, attention)`` with attention (B, K, M) per hop (or pass) over the slots.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from memjax.models.base import Model, Phase, Prediction, Traits, softmax_prediction
from memjax.ops.encoding import padding_row_mask


@dataclasses.dataclass(frozen=True)
class NNXConfig:
    """What an :class:`NNXModel` is built from (frozen: the engine rebuilds the model with another
    ``vocab_size`` when tasks with different vocabularies train together).

    Attributes:
        vocab_size: V, words of the vocabulary (0 = padding).
        memory_size: the most memory slots a story fills.
        build: ``build(vocab_size, memory_size, *, rngs, **options) -> nnx.Module`` (a module class will do).
        options: more keyword arguments of ``build``, as ``(name, value)`` pairs.
        name: the model's name (its :class:`~memjax.models.base.Traits` name).
        attention: what the module's attention is per row (``"hop"``, ``"pass"``...), None if it returns none.
    """

    vocab_size: int
    memory_size: int
    build: Callable[..., nnx.Module]
    options: tuple[tuple[str, Any], ...] = ()
    name: str = "nnx"
    attention: str | None = None


class NNXModel(Model):
    """A Flax NNX question-answering module as a model of memjax's engine (see the module docstring).

    Parameters are the module's state as a pure nested dict (``nnx.to_pure_dict``); :meth:`module`
    merges them back into a module. The loss is the softmax cross-entropy of the answer word; the
    padding word's row of every embedding (a parameter whose path names ``embed`` and whose first axis is
    the vocabulary) gets no gradient, as in memjax's models.
    """

    def __init__(self, cfg: NNXConfig):
        self.cfg = cfg
        self._graphdef, self._abstract = nnx.split(nnx.eval_shape(lambda: self._build(nnx.Rngs(0))))

    @property
    def traits(self) -> Traits:
        return Traits(self.cfg.name, attention=self.cfg.attention)

    def _build(self, rngs: nnx.Rngs) -> nnx.Module:
        c = self.cfg
        return c.build(c.vocab_size, c.memory_size, rngs=rngs, **dict(c.options))

    def init(self, key: jax.Array) -> dict:
        _, state = nnx.split(self._build(nnx.Rngs(params=key)))
        return nnx.to_pure_dict(state)

    def module(self, params: dict) -> nnx.Module:
        """The module holding ``params`` (a pure dict as :meth:`init` makes it)."""
        state = jax.tree.map(lambda a: a, self._abstract)  # a fresh copy to fill
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self._graphdef, state)

    def padding_mask(self, params: dict) -> dict:
        row = padding_row_mask(self.cfg.vocab_size)

        def mask(path, leaf):
            names = "/".join(str(getattr(p, "key", p)) for p in path).lower()
            vocab_rows = len(leaf.shape) == 2 and leaf.shape[0] == self.cfg.vocab_size
            return row if vocab_rows and "embed" in names else 1.0

        return jax.tree_util.tree_map_with_path(mask, params)

    def unpad(self, params: dict) -> dict:
        """As trained: the module's own shapes decide which axes are the vocabulary's."""
        return params

    def _logits(self, params: dict, data: dict, batch: dict):
        out = self.module(params)(data["sentences"], batch["story"], batch["query"])
        logits, attention = out if isinstance(out, tuple) else (out, None)
        return jnp.where(data["answers"], logits, -1e30), attention

    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        logits, _ = self._logits(params, data, batch)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["answer"]), jnp.argmax(logits, -1)

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        return softmax_prediction(*self._logits(params, data, batch))

    def inputs(self, sentences, vocab_words) -> dict:
        del vocab_words
        return {"sentences": np.asarray(sentences, np.int32)}
