"""MemNN's O module on very large memories: full scoring against hashing (Weston et al. 2014, 3.3).

Command (from the repository root):

    python benchmarks/memnn_hashing.py                  # stories of 1,000, 10,000 and 100,000 sentences
    python benchmarks/memnn_hashing.py --sizes 1000     # a quick run

A MemNN (one hop) is trained on generated single-fact stories of 20 statements (20 people, 20 places:
``memjax.data.generate.single_fact``), then asked about generated stories of N statements. For each
N, the O module picks the supporting memory of each question:

- *full*: every memory is scored and the paper's selection loop runs over all of them;
- *word hash*: only the memories sharing a word with the question are scored (words in more than
  ``--max-share`` of the memories, such as "the", are not hashed);
- *cluster hash (k)*: the words are clustered by their O-module embeddings (k-means, k clusters) and
  only the memories sharing a cluster with a question word are scored.

The buckets are built when the memories are written (the G module), once per story, and that time
is reported on its own. ``ms/question`` of the hashed variants includes the bucket lookup on the host
and moving the candidates to the device; ``O ms`` is the O module's program alone (scoring and the
selection loop over the memories it is given, the same program for every variant). Reported per N and variant: median milliseconds per question (of ``--questions``, after an
untimed pass over them that compiles every shape), the speed-up over full scoring, the share of
memories scored, how often the supporting fact is among the candidates (recall) and how often the
chosen memory is the supporting fact. Writes benchmarks/results/memnn_hashing.json. Time it with
nothing else running.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import memjax
from memjax.data.generate import single_fact
from memjax.models.memnn import MemNN, MemNNConfig
from memjax.ops.hashing import ClusterHash, WordHash
from memjax.train.engine import Trainer
from memjax.train.recipes import MEMNN_1K

RESULTS = Path(__file__).resolve().parent / "results"


def train(seed: int = 0):
    ds = single_fact(2000, 200, 200, story_length=20, people=20, places=20, seed=seed)
    model = MemNN(MemNNConfig(vocab_size=len(ds.vocab), memory_size=20, hops=1))
    fit = Trainer(model, dataclasses.replace(MEMNN_1K, epochs=20), ds).fit([seed])
    params = jax.tree.map(lambda a: jnp.asarray(a[0]), fit.params)
    return ds, model, params, float(fit.errors["test"][0])


def _bucket_size(n: int) -> int:
    """Candidates are padded to a few sizes (quarter steps between powers of two), so that few
    shapes compile."""
    step = 16
    while step * 8 <= n:
        step *= 2
    return max(64, -(-n // step) * step)


def main(argv=None) -> int:
    memjax.configure_xla()  # one JAX device per CPU core, as the command line does
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="story lengths (sentences)")
    p.add_argument("--questions", type=int, default=30, help="questions per size (each with its own story)")
    p.add_argument("--clusters", default="10,20,40", help="k of the cluster hashes")
    p.add_argument("--max-share", type=float, default=0.1,
                   help="words (clusters) in more than this share of the memories are not hashed")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    ks = [int(k) for k in args.clusters.split(",") if k]

    t0 = time.perf_counter()
    ds, model, params, test_error = train()
    print(f"trained on 20-statement stories: test error {test_error:.1f}% ({time.perf_counter() - t0:.1f} s)")
    table = np.asarray(model.bags(ds.sentences))  # the distinct sentences' word ids
    vectors = np.asarray(params["O"]["y"][: model.cfg.vocab_size])

    embeddings = model.memory_embeddings(params, jnp.asarray(table))  # e_y of each distinct sentence, once

    @jax.jit
    def choose(story, query):  # the O module's first hop over the given memory slots
        return model.select(params, jnp.asarray(table), story[None], query[None], embeddings)[0, 0]

    rows = []
    for n in sizes:
        test = single_fact(1, 1, args.questions, story_length=n, people=20, places=20, seed=1000 + n).test
        variants = {"full": None, "word hash": lambda words: WordHash(words, model.cfg.vocab_size, args.max_share)}
        for k in ks:
            variants[f"cluster hash (k={k})"] = lambda words, k=k: ClusterHash(words, vectors, k, args.max_share)
        for name, build in variants.items():
            o_times, times, shares, recall, right, build_s = [], [], [], [], [], []
            indexes = {}
            for i in range(2 * args.questions):  # a first, untimed pass writes the memories and compiles every shape
                j = i % args.questions
                story, query, truth = test.story[j], test.query[j], int(test.supporting[j, 0])
                if build is None:
                    t = time.perf_counter()
                    win = int(choose(story, query))
                    elapsed = o_elapsed = time.perf_counter() - t
                    cands = None
                else:
                    if j not in indexes:  # G: the buckets are written once, with the memories
                        t = time.perf_counter()
                        indexes[j] = build(table[story])
                        build_s.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    cands = indexes[j].candidates(query)
                    sub = np.zeros(_bucket_size(len(cands)), np.int32)
                    sub[: len(cands)] = story[cands]
                    t_o = time.perf_counter()
                    w = int(choose(sub, query)) if len(cands) else -1
                    o_elapsed = time.perf_counter() - t_o
                    elapsed = time.perf_counter() - t
                    win = int(cands[w]) if 0 <= w < len(cands) else -1
                if i < args.questions:
                    continue
                times.append(elapsed)
                o_times.append(o_elapsed)
                if cands is not None:
                    shares.append(len(cands) / n)
                    recall.append(truth in set(cands.tolist()))
                right.append(win == truth)
            row = {"sentences": n, "variant": name, "ms_per_question": 1000 * statistics.median(times),
                   "o_ms_per_question": 1000 * statistics.median(o_times),
                   "scored_share": float(np.mean(shares)) if shares else 1.0,
                   "recall": float(np.mean(recall)) if recall else 1.0, "chosen_right": float(np.mean(right)),
                   "build_ms": 1000 * statistics.median(build_s) if build_s else 0.0}
            rows.append(row)
    for row in rows:
        full = next(r for r in rows if r["sentences"] == row["sentences"] and r["variant"] == "full")
        row["speedup"] = full["ms_per_question"] / row["ms_per_question"]
        row["o_speedup"] = full["o_ms_per_question"] / row["o_ms_per_question"]
    head = f"{'sentences':>9}  {'variant':<22} {'ms/question':>11} {'speed-up':>8} {'O ms':>6} {'O speed-up':>10} " \
           f"{'scored':>7} {'recall':>7} {'right':>6} {'build ms':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['sentences']:>9,}  {r['variant']:<22} {r['ms_per_question']:>11.2f} {r['speedup']:>7.1f}x "
              f"{r['o_ms_per_question']:>6.2f} {r['o_speedup']:>9.1f}x "
              f"{100 * r['scored_share']:>6.1f}% {100 * r['recall']:>6.1f}% {100 * r['chosen_right']:>5.1f}% "
              f"{r['build_ms']:>8.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()} ({jax.devices()[0].platform}, "
           f"{jax.device_count()} devices)", "trained_test_error": test_error, "max_share": args.max_share,
           "questions": args.questions, "rows": rows}
    (RESULTS / "memnn_hashing.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'memnn_hashing.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
