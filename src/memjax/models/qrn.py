"""Query-Reduction Network, ``--model qrn`` (Seo, Min, Farhadi & Hajishirzi, ICLR 2017).

Every sentence of the story and the question are embedded with the position encoding of
Sukhbaatar et al. 2015 (:func:`memjax.ops.encoding.encode_sentence`, the paper's formula). A stack
of QRN layers (:mod:`memjax.ops.qrn`) reads the sentences oldest first: the first layer's query is
the question, layer k's query at step t is layer k-1's reduced query h_t; in the bidirectional
variant each layer adds a backward pass (its own parameters) to the forward one. The last layer's
reduced query at the most recent sentence answers through a softmax over the vocabulary
(``answer`` (V, d): logits = h answer^T, restricted to the words that may be answers).

:attr:`Prediction.attention` holds the forward update gates z of each layer per memory slot
(``Traits.attention == "gate"``): how much each sentence rewrote the query. They are gates, not a
distribution: they do not sum to 1.

The defaults are the "2rb" variant of the authors' code (seominjoon/qrn, ``babi/main.py``): d = 50,
2 layers, reset gate, bidirectional, gate bias 2.5, N(0, 1) initialisation; the recipe is
:data:`memjax.train.recipes.QRN_1K`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.models.base import Model, Phase, Prediction, Traits, softmax_prediction
from memjax.ops.encoding import encode_sentence
from memjax.ops.qrn import qrn_init, qrn_stack


@dataclasses.dataclass(frozen=True)
class QRNConfig:
    """QRN hyperparameters.

    ``dim``: the embedding size, also the reduced queries' size; ``layers``: QRN layers stacked;
    ``reset``: the reset gate; ``bidirectional``: each layer adds a backward pass; ``gate_bias``: the
    starting bias of the update (and reset) gates; ``init_std``: every weight starts N(0, init_std^2)
    (the padding word's embedding 0); ``parallel``: the associative scan (else the sequential loop:
    same values, for checking).
    """

    vocab_size: int
    memory_size: int = 50
    dim: int = 50
    layers: int = 2
    reset: bool = True
    bidirectional: bool = True
    gate_bias: float = 2.5
    init_std: float = 1.0
    pe_formula: str = "paper"
    parallel: bool = True

    def __post_init__(self):
        if self.dim < 1 or self.layers < 1 or self.memory_size < 1 or self.vocab_size < 3:
            raise ValueError("dim, layers and memory_size must be positive and the vocabulary non-trivial")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be positive, got {self.init_std}")
        if self.pe_formula not in ("paper", "official"):
            raise ValueError(f"pe_formula must be 'paper' or 'official', got {self.pe_formula!r}")


def encode(embed: jnp.ndarray, ids: jnp.ndarray, formula: str = "paper") -> jnp.ndarray:
    """Position-encoded sentences (..., d) from word ids (..., L) (0: padding): encode_sentence per row."""
    flat = ids.reshape(-1, ids.shape[-1])
    out = jax.vmap(lambda row: encode_sentence(embed, row, "pe", formula))(flat)
    return out.reshape(*ids.shape[:-1], embed.shape[1])


class QRN(Model):
    """The Query-Reduction Network (see the module docstring).

    Parameters: ``embed`` (V, d), ``layers`` (per layer ``{"fwd": ..., "bwd": ...}`` of
    :func:`memjax.ops.qrn.qrn_init`), ``answer`` (V, d).
    """

    traits = Traits("qrn", attention="gate")
    embeddings = ("embed", "answer")

    def init(self, key: jax.Array) -> dict:
        c = self.cfg
        k = jax.random.split(key, 2 + 2 * c.layers)
        layers = []
        for i in range(c.layers):
            directions = ("fwd", "bwd") if c.bidirectional else ("fwd",)
            layers.append({name: qrn_init(k[2 + 2 * i + j], c.dim, c.reset, c.gate_bias, c.init_std)
                           for j, name in enumerate(directions)})
        embed = c.init_std * jax.random.normal(k[0], (c.vocab_size, c.dim))
        return {"embed": embed.at[0].set(0.0), "layers": layers,
                "answer": c.init_std * jax.random.normal(k[1], (c.vocab_size, c.dim))}

    def reduce(self, params: dict, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray):
        """(the last layer's reduced query at the most recent sentence (B, d), update gates (B, K, M)
        per memory slot, slot 0 the most recent)."""
        c = self.cfg
        x = encode(params["embed"], sentences[story[:, ::-1]], c.pe_formula)  # (B, M, d), oldest first
        q = encode(params["embed"], query, c.pe_formula)  # (B, d)
        mask = story[:, ::-1] != 0
        h, z = jax.vmap(lambda xi, qi, mi: qrn_stack(params["layers"], xi, qi, mi, c.parallel))(x, q, mask)
        return h[:, -1], z[:, :, ::-1]

    def logits(self, params: dict, data: dict, batch: dict):
        """(answer logits (B, V), update gates (B, K, M))."""
        h, z = self.reduce(params, data["sentences"], batch["story"], batch["query"])
        logits = h @ params["answer"].T
        answers = data.get("answers")
        return (logits if answers is None else jnp.where(answers, logits, -1e30)), z

    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        del phase
        logits, _ = self.logits(params, data, batch)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["answer"]), jnp.argmax(logits, -1)

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        logits, z = self.logits(params, data, batch)
        return softmax_prediction(logits, z)

    def query_inputs(self, ids) -> np.ndarray:
        return np.asarray(ids, np.int32)
