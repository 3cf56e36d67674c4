"""A bAbI question-answering model composed from :mod:`memjax.nn` modules, trained by memjax's engine.

The model is a few lines of Flax NNX; :class:`memjax.nn.adapter.NNXModel` turns it into a model of
memjax's interface, so that the engine trains several seeds at once (vmapped, epochs in ``lax.scan``)
and selects the run with the lowest validation error. Run (bAbI is downloaded on first use, or read
from ``$MEMJAX_DATA``):

    python examples/nn_qa.py --task 1 [--model dmn+] [--seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np
from flax import nnx

import memjax
import memjax.nn as mnn
from memjax.data import load_babi
from memjax.nn.adapter import NNXConfig, NNXModel
from memjax.train.engine import Trainer, TrainConfig


# --8<-- [start:models]
class MemN2NQA(nnx.Module):
    """End-to-end memory network: position-encoded memories, K adjacent-tied hops, answer W u."""

    def __init__(self, vocab_size: int, memory_size: int, dim: int = 20, hops: int = 3, *, rngs: nnx.Rngs):
        self.read = mnn.MultiHopRead(vocab_size, dim, hops, memory_size, rngs=rngs)

    def __call__(self, sentences: jax.Array, story: jax.Array, query: jax.Array):
        """(U, L) distinct sentences, (B, M) story rows (slot 0 = most recent), (B, Q) query ->
        ((B, V) logits, (B, hops, M) attention)."""
        u, attention = self.read(sentences[story], query)
        return self.read.logits(u), attention


class DMNPlusQA(nnx.Module):
    """DMN+: input fusion over the story, a GRU over the question, episodic memory, answer W [m; q] + b."""

    def __init__(self, vocab_size: int, memory_size: int, dim: int = 40, passes: int = 3, *, rngs: nnx.Rngs):
        del memory_size
        self.fusion = mnn.InputFusion(vocab_size, dim, rngs=rngs)
        self.question = mnn.GRU(dim, dim, rngs=rngs)
        self.memory = mnn.EpisodicMemory(dim, passes, rngs=rngs)
        self.answer = mnn.AnswerModule(dim, vocab_size, rngs=rngs)

    def __call__(self, sentences: jax.Array, story: jax.Array, query: jax.Array) -> jax.Array:
        """As :meth:`MemN2NQA.__call__`."""
        words = sentences[story][..., ::-1, :]  # story order: oldest statement first
        facts = self.fusion(words)
        q = self.question(self.fusion.encoder.embed(query), query != 0)[..., -1, :]
        m, gates = self.memory(facts, story[..., ::-1] != 0, q)
        return self.answer(m, q), gates[..., ::-1]  # the gates per pass, back in slot order


# --8<-- [end:models]


# --8<-- [start:engine]
def model_for(name: str, ds) -> NNXModel:
    """The example's model of ``name`` for the dataset ``ds``, as a model of memjax's engine."""
    build, attention = (MemN2NQA, "hop") if name == "memn2n" else (DMNPlusQA, "pass")
    return NNXModel(NNXConfig(len(ds.vocab), ds.memory_size, build, name=f"nn-{name}", attention=attention))


# the example's recipe: Adam at 0.01, the gradient clipped to norm 40, 60 epochs
RECIPE = TrainConfig(epochs=60, batch_size=32, lr=0.01, optimizer="adam", max_grad_norm=40.0)
# --8<-- [end:engine]


def main(argv=None) -> None:
    memjax.configure_xla()  # one JAX device per CPU core: the seeds' runs are spread over them
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", type=int, default=1)
    ap.add_argument("--set", default="en", help="bAbI set: en (1k) or en-10k")
    ap.add_argument("--model", choices=["memn2n", "dmn+"], default="memn2n")
    ap.add_argument("--epochs", type=int, default=RECIPE.epochs)
    ap.add_argument("--seeds", type=int, default=3, help="runs trained at once; the lowest validation error is kept")
    ap.add_argument("--memory", type=int, default=50)
    args = ap.parse_args(argv)

    start = time.perf_counter()
    ds = load_babi([args.task], args.set, memory_size=args.memory)[0]
    fit = Trainer(model_for(args.model, ds), dataclasses.replace(RECIPE, epochs=args.epochs), ds).fit(
        list(range(args.seeds)))
    best = int(np.argmin(fit.errors["valid"]))
    for s, (v, t) in enumerate(zip(fit.errors["valid"], fit.errors["test"])):
        print(f"seed {s}: valid error {v:.1f}%, test error {t:.1f}%{'  <- selected on validation' if s == best else ''}")
    print(f"{ds.name}, nn-{args.model}: test error {fit.errors['test'][best]:.1f}% ({len(ds.test)} questions); "
          f"{time.perf_counter() - start:.1f} s in all")


if __name__ == "__main__":
    main()
