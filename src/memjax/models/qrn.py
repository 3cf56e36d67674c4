"""Query-Reduction Network, ``--model qrn`` (Seo, Min, Farhadi & Hajishirzi, ICLR 2017).

Every sentence of the story and the question are embedded with the position encoding of
Sukhbaatar et al. 2015 (:func:`memjax.ops.encoding.encode_sentence`, the paper's formula). A stack
of QRN layers (:mod:`memjax.ops.qrn`) reads the sentences oldest first: the first layer's query is
the question, layer k's query at step t is layer k-1's reduced query h_t; in the bidirectional
variant every layer but the last adds a backward pass (same gates, its own reset gate) to the
forward one. The last layer, forwards only and without reset, answers from its reduced query after
the most recent sentence through a softmax over the vocabulary (``answer`` (V, d): logits =
h answer^T, restricted to the words that may be answers). Each layer has weights of its own; the
authors' code ties them (``tied``).

:attr:`Prediction.attention` holds the forward update gates z of each layer per memory slot
(``Traits.attention == "gate"``): how much each sentence rewrote the query. They are gates, not a
distribution: they do not sum to 1.

The defaults are the "2rb" variant of the authors' code (seominjoon/qrn, ``babi/main.py`` and
``babi/model.py``): d = 50, 2 layers, reset gate, bidirectional, update gates starting at
sigmoid(-2.5), fan-in scaled candidate and answer weights; chosen on validation (docs/models/qrn.md):
untied layers and N(0, 0.3^2) embeddings and gate weights (the authors': tied, N(0, 1)); the recipe
is :data:`memjax.train.recipes.QRN_1K`.
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
    ``reset``: the reset gate; ``bidirectional``: every layer but the last adds a backward pass;
    ``tied``: the layers share one set of weights (the authors' code; untied chosen on validation);
    ``forget_bias``: the update gate's bias starts at ``-forget_bias``; ``init_std``: the embedding and the gates' weights start N(0, init_std^2) (the
    padding word's embedding 0; the candidate and answer weights are fan-in scaled; 0.3 chosen on
    validation, the authors' is 1); ``pe_length``: J of the position encoding (None: each sentence's
    own length); ``parallel``: the associative scan (True) or the sequential loop (False), same
    values; None: the faster on the platform, the loop on CPUs and the scan elsewhere
    (benchmarks/throughput.py, ``--qrn-scan``).
    """

    vocab_size: int
    memory_size: int = 50
    dim: int = 50
    layers: int = 2
    reset: bool = True
    bidirectional: bool = True
    tied: bool = False
    forget_bias: float = 2.5
    init_std: float = 0.3
    pe_formula: str = "paper"
    pe_length: int | None = None
    parallel: bool | None = None

    def __post_init__(self):
        if self.dim < 1 or self.layers < 1 or self.memory_size < 1 or self.vocab_size < 3:
            raise ValueError("dim, layers and memory_size must be positive and the vocabulary non-trivial")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be positive, got {self.init_std}")
        if self.pe_formula not in ("paper", "official"):
            raise ValueError(f"pe_formula must be 'paper' or 'official', got {self.pe_formula!r}")


def encode(embed: jnp.ndarray, ids: jnp.ndarray, formula: str = "paper", length: int | None = None) -> jnp.ndarray:
    """Position-encoded sentences (..., d) from word ids (..., L) (0: padding): encode_sentence per row."""
    flat = ids.reshape(-1, ids.shape[-1])
    out = jax.vmap(lambda row: encode_sentence(embed, row, "pe", formula, length))(flat)
    return out.reshape(*ids.shape[:-1], embed.shape[1])


class QRN(Model):
    """The Query-Reduction Network (see the module docstring).

    Parameters: ``embed`` (V, d), ``layers`` (a list of :func:`memjax.ops.qrn.qrn_init`'s parameters:
    one when ``tied``, else one per layer), ``answer`` (V, d).
    """

    traits = Traits("qrn", attention="gate")
    embeddings = ("embed", "answer")

    def init(self, key: jax.Array) -> dict:
        c = self.cfg
        k = jax.random.split(key, 2 + c.layers)
        layers = [qrn_init(k[2 + i], c.dim, c.reset, c.bidirectional, c.forget_bias, c.init_std)
                  for i in range(1 if c.tied else c.layers)]
        embed = c.init_std * jax.random.normal(k[0], (c.vocab_size, c.dim))
        return {"embed": embed.at[0].set(0.0), "layers": layers,
                "answer": jax.random.normal(k[1], (c.vocab_size, c.dim)) / np.sqrt(c.dim)}

    def decay_mask(self, params: dict) -> dict:
        """L2 on every weight but the biases (as the authors' code: the gate vectors included)."""
        return jax.tree_util.tree_map_with_path(lambda path, a: 0.0 if path[-1].key.startswith("b") else 1.0,
                                                params)

    def reduce(self, params: dict, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray):
        """(the last layer's reduced query after the most recent sentence (B, d), update gates (B, K, M)
        per memory slot, slot 0 the most recent)."""
        c = self.cfg
        encoded = encode(params["embed"], sentences, c.pe_formula, c.pe_length)  # (U, d): each distinct sentence once
        x = encoded[story[:, ::-1]]  # (B, M, d), oldest first
        q = encode(params["embed"], query, c.pe_formula, c.pe_length)  # (B, d)
        mask = story[:, ::-1] != 0
        layers = params["layers"] * c.layers if c.tied else params["layers"]
        parallel = c.parallel if c.parallel is not None else jax.default_backend() != "cpu"
        h, z = jax.vmap(lambda xi, qi, mi: qrn_stack(layers, xi, qi, mi, c.bidirectional, parallel))(x, q, mask)
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
