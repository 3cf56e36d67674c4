"""MemNN with unseen words (``--unseen``) on bAbI-1k task 1: does a never-seen name hijack the memory?

Command (from the repository root, with MEMJAX_DATA pointing at tasks_1-20_v1-2):

    python experiments/memnn_unseen.py                        # train (3 runs, about 2 min on 2 CPU cores), evaluate
    python experiments/memnn_unseen.py --checkpoint DIR       # evaluate a run saved by memjax train --unseen --out DIR

Trains ``memjax train --model memnn --tasks 1 --unseen --seeds 3`` (the run with the lowest validation
error is kept: selection on the release's validation questions, unchanged, never on test), then answers
the test questions three ways:

- **unchanged**: the test set as it is;
- **other name replaced**: for each question and each *other* name in its story (not the one asked
  about), that name replaced by a never-seen word (the unknown word id) in every sentence: "Daniel
  travelled to the office. Xander went to the hallway. Where is Daniel?". Each (question, name) pair
  counts once; its baseline is the same questions unchanged, counted as often;
- **asked name replaced**: the name asked about replaced by a never-seen word in the story and the
  question (Weston et al. 2014, section 3.6: a story about a new name can still be answered).

Names are the words that begin a statement of the training stories (task 1: john, mary, sandra,
daniel); a question's asked name is its one word among them (questions with none or several are left
out and counted). Done when (issue 31, item 9): other name replaced at most 1 point above the same
questions unchanged, asked name replaced at most 5% error.

Prints a table (command, date, machine, numbers) and writes it with the numbers to
experiments/results/memnn_unseen.{md,json} (``--name`` changes the file names).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

import memjax

RESULTS = Path(__file__).resolve().parent / "results"
OTHER_BOUND = 1.0  # points above the same questions unchanged
ASKED_BOUND = 5.0  # % error (the paper's claim)


def statement_names(ds) -> np.ndarray:
    """The word ids that begin a statement of the training stories (bAbI's names), sorted."""
    used = np.unique(ds.train.story)
    first = ds.sentences[used[used > 0], 0]
    return np.unique(first[first > 1])


def replaced(ids: np.ndarray, word: int) -> np.ndarray:
    """``ids`` with ``word`` replaced by the unknown word (what a never-seen name is read as)."""
    from memjax.data.dataset import UNK

    return np.where(ids == word, UNK, ids)


def evaluate(model, params, ds, vocab_words=None) -> dict:
    """The three test errors (%) of a trained model (see the module docstring) and their counts.

    ``model``/``params``: a trained model and its parameters (one run); ``ds``: the task's Dataset
    (its test split is answered; ``vocab_words``: the model's vocabulary, default the dataset's).
    """
    from memjax.infer import model_data, predictions

    words = list(vocab_words or ds.vocab.words)
    t = ds.test
    names = statement_names(ds)
    asked_mask = np.isin(t.query, names)
    one = asked_mask.sum(1) == 1
    asked = np.where(one, np.max(np.where(asked_mask, t.query, 0), axis=1), 0)

    def right(sentences, query):  # every test question (one compiled program for all calls)
        data = model_data(model, sentences, words)
        return predictions(model, params, data, t.story, query).answer == t.answer

    unchanged = right(ds.sentences, t.query)
    other_right, other_base, asked_right = [], [], []
    story_words = ds.sentences[t.story].reshape(len(t), -1)
    for name in names:
        hidden = replaced(ds.sentences, name)
        rows = one & (asked != name) & (story_words == name).any(1)  # another name of the story
        other_right.append(right(hidden, t.query)[rows])
        other_base.append(unchanged[rows])
        asked_right.append(right(hidden, replaced(t.query, name))[one & (asked == name)])
    other_right, other_base, asked_right = (np.concatenate(x) for x in (other_right, other_base, asked_right))

    def err(ok):
        return float(100.0 * (1.0 - ok.mean())) if len(ok) else float("nan")

    return {"names": [words[i] for i in names],
            "unchanged": {"questions": int(len(t)), "error": err(unchanged)},
            "other_replaced": {"pairs": int(len(other_right)), "error": err(other_right),
                               "same_unchanged_error": err(other_base)},
            "asked_replaced": {"questions": int(len(asked_right)), "error": err(asked_right)},
            "left_out": int((~one).sum())}


def meets(found: dict) -> dict:
    """The issue's done-when on ``evaluate``'s numbers."""
    o, a = found["other_replaced"], found["asked_replaced"]
    return {"other": o["error"] <= o["same_unchanged_error"] + OTHER_BOUND, "asked": a["error"] <= ASKED_BOUND}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {cpu} ({platform.node()})"


def markdown(found: dict, meta: dict) -> str:
    o, a, u = found["other_replaced"], found["asked_replaced"], found["unchanged"]
    ok = meets(found)
    lines = [f"Command: `{meta['command']}`  ",
             f"Date: {meta['date']}; machine: {meta['machine']}; memjax {meta['version']}  ",
             f"Model: {meta['model']}", "",
             "| test stories | questions | error % |", "|---|---:|---:|",
             f"| unchanged | {u['questions']} | {u['error']:.1f} |",
             f"| one other name replaced by a never-seen word | {o['pairs']} (question, name) pairs | {o['error']:.1f} |",
             f"| (the same pairs' questions unchanged) | {o['pairs']} | {o['same_unchanged_error']:.1f} |",
             f"| the asked name replaced by a never-seen word | {a['questions']} | {a['error']:.1f} |", "",
             f"- other name replaced: {o['error'] - o['same_unchanged_error']:+.1f} points against the same questions "
             f"unchanged (bound +{OTHER_BOUND:g}): {'met' if ok['other'] else 'NOT met'}",
             f"- asked name replaced: {a['error']:.1f}% (bound {ASKED_BOUND:g}%): {'met' if ok['asked'] else 'NOT met'}",
             f"- names: {', '.join(found['names'])}; questions left out (not exactly one name): {found['left_out']}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    memjax.configure_xla()  # one JAX device per CPU core, as the command line does
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", metavar="DIR", help="evaluate the model saved in DIR (memjax train --out DIR) "
                                                       "instead of training one")
    p.add_argument("--task", type=int, default=1, help="the bAbI task (default 1; its questions must name one person)")
    p.add_argument("--seeds", type=int, default=3, help="runs to train, the best on validation kept (default 3)")
    p.add_argument("--epochs", type=int, default=None, help="at most this many epochs (default: the recipe's)")
    p.add_argument("--unseen-rate", type=float, default=None,
                   help="the share of training examples that pretend a word unseen (default: MemNNConfig.unseen_rate)")
    p.add_argument("--data", default=None, help="the bAbI folder (default $MEMJAX_DATA)")
    p.add_argument("--name", default="memnn_unseen", help="results file names (default memnn_unseen)")
    p.add_argument("--out", metavar="DIR", help="keep the trained run in DIR (memjax's --out; default: a temporary folder)")
    args = p.parse_args(argv)

    from memjax.data.dataset import load_babi
    from memjax.infer import Answerer
    from memjax.train.protocol import run_babi

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.checkpoint
        trained = None
        if folder is None:
            folder = args.out or str(Path(tmp) / "run")
            train = {"epochs": args.epochs} if args.epochs else {}
            trained = run_babi("memnn", "en", [args.task], seeds=args.seeds, data=args.data,
                               model_overrides={"unseen": True, "unseen_rate": args.unseen_rate},
                               train_overrides=train, out=folder,
                               log=lambda s: print(s, flush=True))
        qa = Answerer.load(folder, args.task)
        if not qa.cfg.unseen:
            print(f"note: the model in {folder} was trained without --unseen (unknown words are ignored)", flush=True)
        ds = load_babi([args.task], "en", args.data, qa.memory_size)[0]
        if ds.vocab.words != qa.vocab.words:
            print("the saved model's vocabulary is not this task's", file=sys.stderr)
            return 1
        found = evaluate(qa.model, qa.params, ds, qa.vocab.words)

    described = f"memnn task {args.task}, unseen={qa.cfg.unseen}, unseen_rate={qa.cfg.unseen_rate}"
    if trained is not None:
        entry = trained["tasks"][str(args.task)]
        described += (f", {args.seeds} runs, seed {entry['selected_seed']} selected on validation "
                      f"(valid error {entry['valid_error']:.1f}, test error {entry['test_error']:.1f}, "
                      f"{entry['epochs']} epochs)")
    else:
        described += f", loaded from {args.checkpoint}"
    meta = {"command": "python experiments/memnn_unseen.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "version": memjax.__version__, "model": described}
    meta["command"] = meta["command"].strip()
    table = markdown(found, meta)
    print(table, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text("# MemNN, unseen words, bAbI-1k task %d\n\n" % args.task + table)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({**meta, **found, "meets": meets(found)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
