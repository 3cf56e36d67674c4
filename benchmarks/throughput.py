"""Training throughput of MemN2N on a bAbI task: examples per second for 1..N vmapped runs.

Command (from the repository root, with MEMJAX_DATA pointing at tasks_1-20_v1-2):

    python benchmarks/throughput.py                  # task 1 and 2, 1 and 10 runs, 120 epochs
    python benchmarks/throughput.py --quick          # a few epochs, well under a minute

Prints a table and writes benchmarks/results/throughput.json. Wall time excludes compilation,
which is reported on its own; "examples/s" counts training examples over all vmapped runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax

from memjax.data.dataset import load_babi
from memjax.models import MemN2N, MemN2NConfig
from memjax.train.engine import Trainer, TrainConfig


def measure(task: int, runs: int, epochs: int, data: str | None) -> dict:
    ds = load_babi([task], "en", data)[0]
    cfg = TrainConfig(epochs=epochs, ls_epochs=min(20, epochs))
    trainer = Trainer(MemN2N(MemN2NConfig(vocab_size=len(ds.vocab))), cfg, ds)
    t0 = time.perf_counter()
    fit = trainer.fit(list(range(runs)))
    wall = time.perf_counter() - t0
    examples = trainer.steps_per_epoch * trainer.batch_size * cfg.total_epochs * runs
    return {"task": task, "runs": runs, "epochs": cfg.total_epochs, "examples": examples,
            "compile_s": fit.seconds["compile"], "train_s": fit.seconds["train"], "wall_s": wall,
            "train_examples_per_s": examples / fit.seconds["train"],
            "mean_test_error": float(fit.errors["test"].mean())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs (CI)")
    p.add_argument("--tasks", default="1,2")
    p.add_argument("--runs", default="1,10")
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "throughput.json"))
    args = p.parse_args(argv)
    epochs = 5 if args.quick else 100
    rows = [measure(int(t), int(r), epochs, args.data) for t in args.tasks.split(",") for r in args.runs.split(",")]
    print(f"{'task':>4} {'runs':>4} {'epochs':>6} {'compile s':>9} {'train s':>8} {'examples/s':>11} {'test err':>8}")
    for r in rows:
        print(f"{r['task']:>4} {r['runs']:>4} {r['epochs']:>6} {r['compile_s']:9.2f} {r['train_s']:8.2f} "
              f"{r['train_examples_per_s']:11,.0f} {r['mean_test_error']:8.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(jax.devices()[0]), "machine": platform.processor() or platform.machine(),
                               "date": time.strftime("%Y-%m-%d"), "quick": args.quick, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
