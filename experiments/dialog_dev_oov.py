"""A validation set for entities never seen in training: dialog bAbI's dev dialogs with their cuisines and
locations replaced by ones that no training dialog holds, as in the test-OOV sets, so that options for
unseen entities (``--type-words``) are chosen on validation data, never on test-OOV.

Command (from the repository root; each RUN a folder of ``memjax train --set dialog --tasks 1`` or ``2``
with ``--out RUN``; MEMJAX_DIALOG_DATA pointing at dialog-bAbI-tasks):

    python experiments/dialog_dev_oov.py RUN [RUN ...] [--seed 0]

For each dev dialog, each cuisine and each location it names is replaced, the same way throughout the
dialog (user turns and the bot's api_call alike), by one drawn without replacement from those of the
knowledge base that the model's vocabulary holds but no training dialog does (the test-OOV sets' new
entities); an api_call that is not among the model's candidates is added to them (for every dialog).
Printed: per-response and per-dialog accuracy on the dev set and on this dev-OOV set, with the added
candidates in both. Tasks 1 and 2 only: their dialogs name no restaurant, whose name, phone and address
would have to be renamed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from memjax.data.dataset import Vocab
from memjax.data.dialog import (Turn, _words_of, dialog_root, parse_dialogs, parse_kb, per_dialog_accuracy,
                                task_paths, vectorize_dialogs)
from memjax.infer import load_models, model_data, predictions
from memjax.models import model_for

RENAMED = ("cuisine", "location")


def renamed_dialogs(turns: list[Turn], pools: dict[str, list[str]], types: dict[str, str],
                    rng: np.random.Generator) -> list[Turn]:
    """``turns`` with each dialog's cuisines and locations replaced, one new word per old word and dialog."""
    by_dialog: dict[int, list[Turn]] = {}
    for t in turns:
        by_dialog.setdefault(t.dialog, []).append(t)
    out = []
    for dialog, its in by_dialog.items():
        said = _words_of(its)
        mapping = {}
        for kind in RENAMED:
            old = sorted(w for w in said if types.get(w) == kind)
            new = rng.choice(pools[kind], size=len(old), replace=False) if old else []
            mapping.update(zip(old, (str(w) for w in new)))
        sub = lambda ws: [mapping.get(w, w) for w in ws]  # noqa: E731
        out += [dataclasses.replace(t, history=[(s, sub(u)) for s, u in t.history], query=sub(t.query),
                                    answer=" ".join(sub(t.answer.split()))) for t in its]
    return out


def evaluate(run: Path, root: Path, seed: int) -> list[str]:
    lines = []
    for label, m in sorted(load_models(run).items()):
        task = int(label)
        if task not in (1, 2):
            raise SystemExit(f"{run}: task {task}: the dev-OOV set is built for tasks 1 and 2")
        paths = task_paths(root, task)
        train, dev = parse_dialogs(paths["train"]), parse_dialogs(paths["valid"])
        types = parse_kb(paths["kb"])
        vocab = Vocab(m["vocab"][2:])
        seen = _words_of(train)
        pools = {k: sorted(w for w, t in types.items() if t == k and w in vocab and w not in seen) for k in RENAMED}
        dev_oov = renamed_dialogs(dev, pools, types, np.random.default_rng(seed))
        candidates = list(m["model"]["candidates"])
        known = set(candidates)
        candidates += sorted({t.answer for t in dev_oov} - known)
        ds = vectorize_dialogs(f"dialog task {task}", task, {"train": train, "valid": dev, "test": dev_oov},
                               candidates, types, int(m["memory_size"]), vocab=vocab)
        family = m.get("family", "memn2n")
        model = model_for(family, {**m["model"], "candidates": tuple(candidates)})
        params = jax.tree.map(jnp.asarray, m["params"])
        data = model_data(model, ds.sentences, ds.vocab.words)
        cells = []
        for name, split in (("dev", ds.valid), ("dev-OOV", ds.test)):
            answer = predictions(model, params, data, split.story, split.query).answer
            right = np.asarray(answer) == split.answer
            dialogs = ds.dialogs["valid" if name == "dev" else "test"]
            cells.append(f"{name} {100 * right.mean():.1f} (dialogs {per_dialog_accuracy(right, dialogs):.1f})")
        extra = len(candidates) - len(known)
        lines.append(f"{run} task {task} ({family}, type words {m['model'].get('type_words', False)}): "
                     + ", ".join(cells) + f"; {extra} api_calls added to the candidates; new words: "
                     f"{len(pools['cuisine'])} cuisines, {len(pools['location'])} locations")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="folders of memjax train --set dialog --out")
    p.add_argument("--seed", type=int, default=0, help="the draw of the new entities (default 0)")
    p.add_argument("--data", default=None, help="the dialog-bAbI-tasks folder (default $MEMJAX_DIALOG_DATA)")
    args = p.parse_args(argv)
    root = dialog_root(args.data)
    for run in args.runs:
        for line in evaluate(run, root, args.seed):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
