"""A bAbI question-answering model composed from :mod:`memjax.nn` modules, trained with plain optax.

A stop-gap training loop (the project's engine, ``memjax train``, is the real one): Adam on the
cross-entropy of the answer word, mini-batches, test error at the end. Run:

    MEMJAX_DATA=/path/to/tasks_1-20_v1-2 python examples/nn_qa.py --task 1 [--model dmn+]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import memjax.nn as mnn
from memjax.data import load_babi


class MemN2NQA(nnx.Module):
    """End-to-end memory network: position-encoded memories, K adjacent-tied hops, answer W u."""

    def __init__(self, vocab_size: int, memory_size: int, dim: int = 20, hops: int = 3, *, rngs: nnx.Rngs):
        self.read = mnn.MultiHopRead(vocab_size, dim, hops, memory_size, rngs=rngs)

    def __call__(self, sentences: jax.Array, story: jax.Array, query: jax.Array) -> jax.Array:
        """(U, L) distinct sentences, (B, M) story rows (slot 0 = most recent), (B, Q) query -> (B, V) logits."""
        u, _ = self.read(sentences[story], query)
        return self.read.logits(u)


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
        m, _ = self.memory(facts, story[..., ::-1] != 0, q)
        return self.answer(m, q)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", type=int, default=1)
    ap.add_argument("--set", default="en", help="bAbI set: en (1k) or en-10k")
    ap.add_argument("--model", choices=["memn2n", "dmn+"], default="memn2n")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--memory", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    start = time.perf_counter()
    ds = load_babi([args.task], args.set, memory_size=args.memory)[0]
    sentences = jnp.asarray(ds.sentences)
    cls = MemN2NQA if args.model == "memn2n" else DMNPlusQA
    model = cls(len(ds.vocab), args.memory, rngs=nnx.Rngs(args.seed))

    graphdef, params = nnx.split(model)
    tx = optax.chain(optax.clip_by_global_norm(40.0), optax.adam(args.lr))
    opt_state = tx.init(params)

    def loss_fn(p, story, query, answer):
        logits = nnx.merge(graphdef, p)(sentences, story, query)
        return optax.softmax_cross_entropy_with_integer_labels(logits, answer).mean()

    @jax.jit
    def step(p, opt_state, story, query, answer):
        loss, grads = jax.value_and_grad(loss_fn)(p, story, query, answer)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    @jax.jit
    def predict(p, story, query):
        return jnp.argmax(nnx.merge(graphdef, p)(sentences, story, query), axis=-1)

    def error(p, split) -> float:
        return float(np.mean(np.asarray(predict(p, split.story, split.query)) != split.answer))

    rng = np.random.default_rng(args.seed)
    n = len(ds.train)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(n)
        losses = []
        for i in range(0, n - args.batch + 1, args.batch):
            idx = order[i:i + args.batch]
            params, opt_state, loss = step(params, opt_state, ds.train.story[idx], ds.train.query[idx],
                                           ds.train.answer[idx])
            losses.append(loss)
        if epoch % 10 == 0 or epoch == args.epochs:
            print(f"epoch {epoch:3d}  loss {float(np.mean(losses)):.4f}  valid error {error(params, ds.valid):.3f}")
    print(f"{ds.name}, {args.model}: test error {error(params, ds.test):.3f} "
          f"({len(ds.test)} questions); {time.perf_counter() - start:.1f} s in all")


if __name__ == "__main__":
    main()
