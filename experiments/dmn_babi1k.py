"""The DMN (Kumar et al. 2016), strongly supervised, on bAbI-1k: per task, beside the paper's summary.

Command (from the repository root, with MEMJAX_DATA pointing at tasks_1-20_v1-2):

    python experiments/dmn_babi1k.py            # all 20 tasks, 4 runs each (about 1 hour on 2 CPU cores)
    python experiments/dmn_babi1k.py --table    # only rewrite the table from the saved results
    python experiments/dmn_babi1k.py --te       # the same with memjax's --te extension (below)

It is ``memjax train --model dmn --set en --tasks all --seeds 4``: memjax's DMN defaults (d = 80,
3 passes, Adam 0.001, batch 32, dropout 0.1, L2 0.001, early stopping after 20 epochs without a
lower validation error), the gates supervised with the supporting facts; the run with the lowest
validation error (the release's en-valid split) is reported, never chosen on the test set. No GloVe
vectors (the paper's embeddings came from GloVe; none are available offline here).

The paper reports that the strongly supervised DMN passes 18 of the 20 tasks (mean accuracy about
93.6%, ../shared/docs/anchors.md; per-task numbers are not quoted here). Issue 4 asks for at least
15 tasks below 5% error.

``--te`` adds memjax's extension that is not in the paper: a learned vector per memory slot added to
each fact, so that the gates can tell a newer fact from an older one (``memjax train --model dmn --te``).
It was chosen on validation: with 2 runs per task, the 20-task mean validation error is 7.83 with it
and 9.18 without.

Writes experiments/results/dmn_babi1k.json (memjax's results.json) and experiments/results/dmn_babi1k.md
(with ``--te``: dmn_babi1k_te.json and dmn_babi1k_te.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memjax.train.protocol import FAIL_THRESHOLD, run_babi

RESULTS = Path(__file__).resolve().parent / "results"


def markdown(res: dict, te: bool = False) -> str:
    lines = ["| task | test | valid | train | epochs |", "|---:|---:|---:|---:|---:|"]
    for t, e in res["tasks"].items():
        lines.append(f"| {t} | {e['test_error']:.1f} | {e['valid_error']:.1f} | {e['train_error']:.1f} | {e['epochs']} |")
    passed = sum(e["test_error"] <= FAIL_THRESHOLD for e in res["tasks"].values())
    lines.append(f"| **mean** | **{res['mean_test_error']:.2f}** | | | |")
    title = "DMN with a learned vector per slot (`--te`, not in the paper)" if te else "DMN"
    return (f"# {title}, strongly supervised, bAbI-1k (test error %)\n\n"
            f"Command: `python experiments/dmn_babi1k.py{' --te' if te else ''}` ({res['config']['seeds']} runs "
            "per task, selected on validation; no GloVe).\n\n" + "\n".join(lines) + "\n\n"
            f"- passed (test error <= {FAIL_THRESHOLD:g}%): {passed} of {len(res['tasks'])}; the paper passes 18 of 20.\n"
            f"- failed: tasks {', '.join(t for t, e in res['tasks'].items() if e['test_error'] > FAIL_THRESHOLD)}.\n"
            f"- {res['seconds']['total']:.0f} s on {res['device']} (compilation included; other work shared the cores).\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=4, help="runs per task (default 4)")
    p.add_argument("--data", default=None)
    p.add_argument("--table", action="store_true", help="only rewrite the table from the saved results")
    p.add_argument("--te", action="store_true", help="with memjax's --te extension (a learned vector per slot)")
    args = p.parse_args(argv)
    name = "dmn_babi1k_te" if args.te else "dmn_babi1k"
    path = RESULTS / f"{name}.json"
    if not args.table:
        res = run_babi("dmn", "en", list(range(1, 21)), seeds=args.seeds, data=args.data,
                       model_overrides={"temporal": True} if args.te else None,
                       log=lambda s: print(s, flush=True))
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=2) + "\n")
    res = json.loads(path.read_text())
    (RESULTS / f"{name}.md").write_text(markdown(res, args.te))
    print((RESULTS / f"{name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
