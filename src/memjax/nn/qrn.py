"""Query-Reduction Network modules (Seo et al. 2017) over the pure op :mod:`memjax.ops.qrn`.

:class:`QRNLayer` is one QRN layer, forwards or both ways (:func:`memjax.ops.qrn_layer`);
:class:`QRNStack` stacks layers as :func:`memjax.ops.qrn_stack` (the computation of
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


def _full_mask(x: Array, mask: Array | None) -> Array:
    return jnp.ones(x.shape[:-1], bool) if mask is None else mask


class QRNLayer(nnx.Module):
    """One QRN layer: update gate z_t, candidate reduced query (times the reset gate r_t), and the
    linear recurrence h_t = z_t r_t h~_t + (1 - z_t) h_{t-1} as a parallel scan; ``bidirectional``
    adds the backward recurrence (same gates and candidates, its own reset gate).

    Parameters ``wz`` (d,), ``bz`` (), ``Wh`` (2d, d), ``bh`` (d,) and, with ``reset``, ``wr`` (d, R),
    ``br`` (R,), initialised as :func:`memjax.ops.qrn_init`.

    Args:
        dim: d, the size of the sentences, queries and reduced queries.
        reset: with the reset gate.
        bidirectional: run both ways.
        forget_bias: the update gate's bias starts at ``-forget_bias``.
        init_std: the gates' weights' standard deviation (default 0.3, as memjax's QRN model; the
            authors' code: 1).
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, dim: int, *, reset: bool = True, bidirectional: bool = False, forget_bias: float = 2.5,
                 init_std: float = 0.3, rngs: nnx.Rngs):
        self._names = _NAMES + (_RESET if reset else ())
        self.bidirectional = bidirectional
        params = qrn_init(rngs.params(), dim, reset, bidirectional, forget_bias, init_std)
        for name in self._names:
            setattr(self, name, nnx.Param(jnp.asarray(params[name])))

    def params(self) -> dict[str, Array]:
        """The parameters as :func:`memjax.ops.qrn_init`'s dict."""
        return values(self, self._names)

    @classmethod
    def from_params(cls, params: dict, bidirectional: bool = False) -> "QRNLayer":
        """A module holding ``params`` (the layout of :func:`memjax.ops.qrn_init`), run both ways when
        ``bidirectional``."""
        reset = "wr" in params
        two_resets = reset and jnp.shape(params["wr"])[1] == 2
        module = cls(jnp.shape(params["Wh"])[1], reset=reset, bidirectional=two_resets, rngs=nnx.Rngs(0))
        module.bidirectional = bidirectional
        load(module, params, module._names)
        return module

    def __call__(self, x: Array, q: Array, mask: Array | None = None) -> tuple[Array, Array]:
        """(reduced queries (..., T, d), update gates (..., T)) of sentences ``x`` (..., T, d), oldest
        first, with queries ``q`` (..., T, d) (or (..., d): the same at every step); ``mask`` (..., T)
        False at empty slots (z = 0 there)."""
        p, mask = self.params(), _full_mask(x, mask)
        q = jnp.broadcast_to(q[..., None, :] if q.ndim == x.ndim - 1 else q, x.shape)
        return over_batch(lambda xi, qi, mi: qrn_layer(p, xi, qi, mi, self.bidirectional), (2, 2, 1), x, q, mask)


class QRNStack(nnx.Module):
    """Stacked QRN layers (:func:`memjax.ops.qrn_stack`): layer k's query is layer k-1's reduced
    queries; with ``bidirectional`` every layer but the last runs both ways; the last runs forwards
    without its reset gate. ``tied``: the layers share one :class:`QRNLayer`'s weights (the authors'
code; memjax's QRN model unties them by default).

    Args:
        dim: d.
        layers: the number of layers (default 2).
        reset, forget_bias, init_std: as :class:`QRNLayer`.
        bidirectional: default True (the "2rb" QRN).
        tied: default False.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, dim: int, layers: int = 2, *, reset: bool = True, bidirectional: bool = True,
                 tied: bool = False, forget_bias: float = 2.5, init_std: float = 0.3, rngs: nnx.Rngs):
        self.depth, self.bidirectional = layers, bidirectional
        self.layers = nnx.List([QRNLayer(dim, reset=reset, bidirectional=bidirectional, forget_bias=forget_bias,
                                         init_std=init_std, rngs=rngs) for _ in range(1 if tied else layers)])

    def params(self) -> list[dict]:
        """The layers' parameters: the layout of :class:`memjax.models.qrn.QRN`'s ``layers``."""
        return [layer.params() for layer in self.layers]

    @classmethod
    def from_params(cls, layers: list[dict], depth: int | None = None, bidirectional: bool = True) -> "QRNStack":
        """A module holding the model's ``layers`` parameters; ``depth``: the number of layers when
        they are tied (one dict given), else ``len(layers)``."""
        module = cls(1, 0, bidirectional=bidirectional, tied=False, rngs=nnx.Rngs(0))
        module.layers = nnx.List([QRNLayer.from_params(p, bidirectional) for p in layers])
        module.depth = depth if len(layers) == 1 and depth is not None else len(layers)
        return module

    def __call__(self, x: Array, q: Array, mask: Array | None = None) -> tuple[Array, Array]:
        """(the last layer's reduced queries (..., T, d), update gates (..., K, T)) of sentences
        ``x`` (..., T, d), oldest first, and questions ``q`` (..., d); ``mask`` (..., T) as :class:`QRNLayer`."""
        layers = self.params()
        layers = layers * self.depth if len(layers) == 1 else layers
        return over_batch(lambda xi, qi, mi: qrn_stack(layers, xi, qi, mi, self.bidirectional), (2, 1, 1),
                          x, q, _full_mask(x, mask))
