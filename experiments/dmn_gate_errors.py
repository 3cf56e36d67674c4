"""Where a strongly supervised DMN goes wrong: its gates against the supporting facts, per pass.

Command (from the repository root, with MEMJAX_DATA pointing at tasks_1-20_v1-2):

    memjax train --model dmn --set en --tasks 2 --seeds 1 --out runs/dmn2     # about 2.5 min on 2 cores
    python experiments/dmn_gate_errors.py --checkpoint runs/dmn2 --task 2

For each split it prints the answer error, how often each pass's strongest gate is on the fact
that pass is supervised with (pass i: supporting fact i, the last one for later passes), how often
all passes are, and the answer error with all gates right and with some gate wrong. On the test
split it also sorts the second pass's wrong choices by whether the chosen fact starts with the same
word as the target (for bAbI task 2: the same person) and whether it is older than the target,
and it lists the test error per answer (for bAbI task 8: how the lists of two objects fare), with
what the wrong answers were (`-`: a word sequence that is no known answer).
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

import memjax
from memjax.data.dataset import load_babi
from memjax.infer import _model, load_models
from memjax.models.dmn import gate_targets
from memjax.train.protocol import _predictor


def main(argv=None) -> int:
    memjax.configure_xla()  # one JAX device per CPU core, as the command line does
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="the --out folder of a memjax train --model dmn run")
    p.add_argument("--task", type=int, required=True)
    p.add_argument("--set", default="en")
    p.add_argument("--data", default=None)
    args = p.parse_args(argv)
    saved = load_models(args.checkpoint).get(str(args.task))
    if saved is None or saved.get("family") != "dmn":
        p.error(f"{args.checkpoint} holds no DMN model for task {args.task}")
    model = _model(saved)
    params = jax.tree.map(jnp.asarray, saved["params"])
    ds = load_babi([args.task], args.set, args.data, memory_size=int(saved["memory_size"]))[0]
    if ds.vocab.words != saved["vocab"]:
        p.error("the data's vocabulary is not the one the model was trained with")
    sentences = jnp.asarray(model.bags(ds.sentences))
    attention = jax.jit(model.attention)
    predict = _predictor(model, params, ds.sentences, vocab_words=ds.vocab.words)

    for name in ("train", "valid", "test"):
        split = getattr(ds, name)
        gates = np.concatenate([np.asarray(attention(params, sentences, jnp.asarray(split.story[i:i + 500]),
                                                     jnp.asarray(model.query_inputs(split.query[i:i + 500]))))
                                for i in range(0, len(split), 500)])
        top = gates.argmax(-1)  # (N, passes) slots (with --stop, the last slot is the end-of-passes candidate)
        end = gates.shape[-1] - 1 if model.cfg.stop else None
        target = np.asarray(gate_targets(split.supporting, top.shape[1], end))  # each pass's supervision
        on = (top == target) | (target < 0)  # with --stop, passes after the end candidate have no target
        right = predict(split) == split.answer
        every = on.all(1)
        wrong_given_bad = 100 * (1 - right[~every].mean()) if (~every).any() else float("nan")
        print(f"{name}: answer error {100 * (1 - right.mean()):.1f}%; gates on the supporting fact per pass "
              f"{', '.join(f'{100 * np.mean(on[target[:, i] >= 0, i]):.1f}%' for i in range(on.shape[1]))}; "
              f"all passes {100 * every.mean():.1f}%; "
              f"answer error with all gates right {100 * (1 - right[every].mean()):.1f}%, "
              f"with some gate wrong {wrong_given_bad:.1f}%")
    if top.shape[1] > 1:
        words = ds.vocab.words
        first = lambda slot_row: next((words[w] for w in ds.sentences[slot_row] if w), "")  # noqa: E731
        kinds = {}
        slots = ds.test.story.shape[1]  # a choice or target at this slot is the end-of-passes candidate
        for j in np.flatnonzero((target[:, 1] >= 0) & ~on[:, 1] & (target[:, 1] < slots) & (top[:, 1] < slots)):
            chosen, wanted = ds.test.story[j, top[j, 1]], ds.test.story[j, target[j, 1]]
            key = ("same first word" if first(chosen) == first(wanted) else "other first word",
                   "older" if top[j, 1] > target[j, 1] else "newer")  # slot 0 is the most recent statement
            kinds[key] = kinds.get(key, 0) + 1
        print("test, pass 2's wrong choices: " + "; ".join(f"{a}, {b}: {n}" for (a, b), n in sorted(kinds.items())))
    guess = predict(ds.test)
    words = ds.vocab.words
    print("test error per answer (questions; wrong answers given):")
    for a in sorted(set(ds.test.answer.tolist()), key=lambda a: -np.sum(ds.test.answer == a)):
        sel = ds.test.answer == a
        wrong = guess[sel & (guess != a)]
        given = {}
        for g in wrong.tolist():
            given[words[g] if g >= 0 else "-"] = given.get(words[g] if g >= 0 else "-", 0) + 1
        print(f"  {words[a]}: {100 * np.mean(guess[sel] != a):.1f}% of {int(sel.sum())}"
              + (f" ({', '.join(f'{w} {n}' for w, n in sorted(given.items(), key=lambda x: -x[1]))})" if given else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
