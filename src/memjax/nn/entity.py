"""The Recurrent Entity Network's dynamic memory (Henaff et al. 2017) as an NNX module over
:func:`memjax.ops.entity.entity_scan` (no second copy of its math)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.nn._util import load, over_batch, values
from memjax.ops.entity import entity_scan, memory_init

Array = jax.Array


class EntityMemory(nnx.Module):
    """N slots with learned keys, each updated by every sentence (:func:`memjax.ops.entity.slot_update`).

    Parameters ``keys`` (N, d), ``U``, ``V``, ``W`` (d, d), ``alpha`` (d,) (PReLU slopes), and with
    ``biases`` ``gate_bias`` (N,) and ``U_bias`` (d,), drawn by :func:`memjax.ops.entity.memory_init` as
    :class:`memjax.models.entnet.EntNet` draws them.

    Args:
        dim: d.
        slots: N.
        init_std: the normal draws' standard deviation.
        prelu_init: the PReLU slopes' start.
        biases: the gate's bias per slot and U's bias (the authors' Torch code; not in the paper).
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    _bias_names = ("gate_bias", "U_bias")

    def __init__(self, dim: int, slots: int = 20, *, init_std: float = 0.1, prelu_init: float = 0.25,
                 biases: bool = False, rngs: nnx.Rngs):
        params = memory_init(rngs.params(), dim, slots, init_std, prelu_init, biases=biases)
        self._names = tuple(params)  # the op's parameter names, biases included where drawn
        for name, value in params.items():
            setattr(self, name, nnx.Param(value))

    def __call__(self, sentences: Array, mask: Array | None = None) -> tuple[Array, Array]:
        """(..., T, d) encoded sentences in reading order (``mask`` (..., T): False at empty ones) ->
        (final slot values (..., N, d), gates (..., T, N))."""
        if mask is None:
            mask = jnp.ones(sentences.shape[:-1], bool)
        p = self.params()
        return over_batch(lambda s, m: entity_scan(p, s, m), (2, 1), sentences, mask)

    def params(self) -> dict[str, Array]:
        """The parameters as the op's dict."""
        return values(self, self._names)

    @classmethod
    def from_params(cls, params: dict) -> "EntityMemory":
        """A module holding ``{"keys", "U", "V", "W", "alpha"}`` (and the biases where ``params`` has
        both)."""
        slots, dim = jnp.shape(params["keys"])
        present = [name in params for name in cls._bias_names]
        if any(present) and not all(present):
            raise ValueError("EntityMemory.from_params: give both biases (gate_bias, U_bias) or neither")
        module = cls(dim, slots, biases=all(present), rngs=nnx.Rngs(0))
        load(module, params, module._names)
        return module
