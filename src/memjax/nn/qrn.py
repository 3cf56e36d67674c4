"""Query-Reduction Network modules (Seo et al. 2017) over the pure op :mod:`memjax.ops.qrn`.

:class:`QRNLayer` is one direction of a QRN layer (:func:`memjax.ops.qrn_layer`); :class:`QRNStack`
stacks layers, optionally bidirectional, as :func:`memjax.ops.qrn_stack` (the computation of
:class:`memjax.models.qrn.QRN`). Parameters are initialised by :func:`memjax.ops.qrn_init`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.nn._util import load, over_batch, values
from memjax.ops import qrn_init, qrn_layer, qrn_stack

Array = jax.Array
_NAMES = ("wz", "bz", "Wh", "bh")
_RESET = ("wr", "br")


class QRNLayer(nnx.Module):
    """One direction of a QRN layer: update gate z_t, candidate (times the reset gate r_t), and the
    linear recurrence h_t = z_t h~_t + (1 - z_t) h_{t-1} as a parallel scan.

    Parameters ``wz`` (d,), ``bz`` (), ``Wh`` (2d, d), ``bh`` (d,) and, with ``reset``, ``wr`` (d,),
    ``br`` (): N(0, init_std^2) weights, gate biases ``gate_bias``, zero ``bh``.

    Args:
        dim: d, the size of the sentences, queries and reduced queries.
        reset: with the reset gate.
        gate_bias: the gates' starting bias.
        init_std: the weights' standard deviation.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, dim: int, *, reset: bool = True, gate_bias: float = 2.5, init_std: float = 1.0,
                 rngs: nnx.Rngs):
        self._names = _NAMES + (_RESET if reset else ())
        params = qrn_init(rngs.params(), dim, reset, gate_bias, init_std)
        for name in self._names:
            setattr(self, name, nnx.Param(jnp.asarray(params[name])))

    def params(self) -> dict[str, Array]:
        """The parameters as :func:`memjax.ops.qrn_init`'s dict."""
        return values(self, self._names)

    @classmethod
    def from_params(cls, params: dict) -> "QRNLayer":
        """A module holding ``params`` (the layout of :func:`memjax.ops.qrn_init`)."""
        module = cls(jnp.shape(params["Wh"])[1], reset="wr" in params, rngs=nnx.Rngs(0))
        load(module, params, module._names)
        return module

    def __call__(self, x: Array, q: Array, mask: Array | None = None, reverse: bool = False) -> tuple[Array, Array]:
        """(reduced queries (..., T, d), update gates (..., T)) of sentences ``x`` (..., T, d), oldest
        first, with queries ``q`` (..., T, d) (or (..., d): the same at every step); ``mask`` (..., T)
        False at empty slots (z = 0 there); ``reverse``: the backward direction."""
        p = self.params()
        if mask is None:
            mask = jnp.ones(x.shape[:-1], bool)
        q = jnp.broadcast_to(q[..., None, :] if q.ndim == x.ndim - 1 else q, x.shape)
        return over_batch(lambda xi, qi, mi: qrn_layer(p, xi, qi, mi, reverse), (2, 2, 1), x, q, mask)


class QRNStack(nnx.Module):
    """Stacked QRN layers (:func:`memjax.ops.qrn_stack`): layer k's query is layer k-1's reduced
    queries; with ``bidirectional`` each layer adds a backward :class:`QRNLayer` of its own.

    Args:
        dim: d.
        layers: the number of layers (default 2).
        reset, gate_bias, init_std: as :class:`QRNLayer`.
        bidirectional: add backward directions (default True: the "2rb" QRN).
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, dim: int, layers: int = 2, *, reset: bool = True, bidirectional: bool = True,
                 gate_bias: float = 2.5, init_std: float = 1.0, rngs: nnx.Rngs):
        def layer():
            return QRNLayer(dim, reset=reset, gate_bias=gate_bias, init_std=init_std, rngs=rngs)

        self.forward = nnx.List([layer() for _ in range(layers)])
        self.backward = nnx.List([layer() for _ in range(layers)] if bidirectional else [])

    def params(self) -> list[dict]:
        """Per layer ``{"fwd": ..., "bwd": ...}``: the layout of :class:`memjax.models.qrn.QRN`'s ``layers``."""
        out = [{"fwd": f.params()} for f in self.forward]
        for layer, b in zip(out, self.backward):
            layer["bwd"] = b.params()
        return out

    @classmethod
    def from_params(cls, layers: list[dict]) -> "QRNStack":
        """A module holding the model's ``layers`` parameters."""
        module = cls(1, 0, bidirectional=False, rngs=nnx.Rngs(0))
        module.forward = nnx.List([QRNLayer.from_params(layer["fwd"]) for layer in layers])
        module.backward = nnx.List([QRNLayer.from_params(layer["bwd"]) for layer in layers if "bwd" in layer])
        return module

    def __call__(self, x: Array, q: Array, mask: Array | None = None) -> tuple[Array, Array]:
        """(the last layer's reduced queries (..., T, d), forward update gates (..., K, T)) of sentences
        ``x`` (..., T, d), oldest first, and questions ``q`` (..., d); ``mask`` (..., T) as :class:`QRNLayer`."""
        layers = self.params()
        if mask is None:
            mask = jnp.ones(x.shape[:-1], bool)
        return over_batch(lambda xi, qi, mi: qrn_stack(layers, xi, qi, mi), (2, 1, 1), x, q, mask)
