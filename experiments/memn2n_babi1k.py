"""Reproduce MemN2N Table 1 (Sukhbaatar et al. 2015) on bAbI 1k: "PE LS RN" and "PE LS RN joint".

Command (from the repository root, with MEMJAX_DATA pointing at tasks_1-20_v1-2):

    python experiments/memn2n_babi1k.py                 # both rows
    python experiments/memn2n_babi1k.py --rows pertask  # or one row: pertask | joint

Protocol: 3 hops, position encoding, temporal encoding, linear start, random noise, adjacent tying;
10 runs per task (per-task row) or 10 joint runs; the run with the lowest validation error on the
release's en-valid split is reported (never the test set). Expected: per-task mean test error at
most 15.0 (paper 13.9), joint at most 13.5 (paper 12.4).

Writes experiments/results/memn2n_babi1k_{pertask,joint}.json (the memjax results.json of each
row) and experiments/results/memn2n_babi1k.md (the per-task table beside the paper's numbers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import memjax
from memjax import paper
from memjax.data.babi import DataError
from memjax.train.protocol import run_babi

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = {"pertask": False, "joint": True}


def markdown(found: dict[str, dict]) -> str:
    cols = []
    for name, res in found.items():
        ref = paper.reference("memn2n", "en", ROWS[name])
        cols.append((name, res, ref))
    head = "| task | " + " | ".join(
        f"ours {'joint' if ROWS[n] else 'per task'} | paper {'joint' if ROWS[n] else 'per task'}" for n, _, _ in cols)
    lines = [head + " |", "|---:|" + "---:|---:|" * len(cols)]
    for t in range(1, 21):
        cells = []
        for _, res, ref in cols:
            e = res["tasks"].get(str(t))
            cells.append(f"{e['test_error']:.1f}" if e else "-")
            cells.append(f"{ref[1][t]:.1f}")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    mean = [f"**{res['mean_test_error']:.1f}** | {ref[2]}" for _, res, ref in cols]
    failed = [f"{res['failed_tasks']} | {ref[3]}" for _, res, ref in cols]
    lines.append("| mean | " + " | ".join(mean) + " |")
    lines.append("| failed (> 5%) | " + " | ".join(failed) + " |")
    notes = []
    for name, res, ref in cols:
        s = res["seconds"]
        c = res["config"]
        notes.append(f"- {name}: {c['seeds']} runs, selected on validation ({c['valid']} split); "
                     f"{s['total']:.0f} s on {res['device']} ({s['compile']:.0f} s compile, {s['train']:.0f} s train); "
                     f"d={c['model']['dim']}, {c['train']['ls_epochs']}+{c['train']['epochs']} epochs.")
        worse = [t for t in range(1, 21) if str(t) in res["tasks"] and res["tasks"][str(t)]["test_error"] > ref[1][t] + 2.0]
        if worse:
            notes.append(f"  - falls short of the paper by more than 2 points on tasks {', '.join(map(str, worse))}.")
    return ("# MemN2N on bAbI 1k (test error %, Table 1 of Sukhbaatar et al. 2015)\n\n"
            "Command: `python experiments/memn2n_babi1k.py`\n\n" + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n")


def main(argv=None) -> int:
    memjax.configure_xla()  # one JAX device per CPU core, as the command line does
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="pertask,joint", help="pertask, joint or both (comma-separated)")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--data", default=None)
    args = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.rows.split(","):
        if name not in ROWS:
            p.error(f"unknown row {name!r}")
        try:
            res = run_babi("memn2n", "en", list(range(1, 21)), ROWS[name], args.seeds, args.data,
                           log=lambda s: print(s, flush=True))
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        (RESULTS / f"memn2n_babi1k_{name}.json").write_text(json.dumps(res, indent=2) + "\n")
        print(f"{name}: mean test error {res['mean_test_error']:.2f}, failed {res['failed_tasks']}", flush=True)
    found = {n: json.loads((RESULTS / f"memn2n_babi1k_{n}.json").read_text())
             for n in ROWS if (RESULTS / f"memn2n_babi1k_{n}.json").exists()}
    (RESULTS / "memn2n_babi1k.md").write_text(markdown(found))
    print((RESULTS / "memn2n_babi1k.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
