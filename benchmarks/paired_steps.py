"""Paired timing of MemN2N's training step: an epoch's batches gathered at once, or in each step.

    python benchmarks/paired_steps.py --set en-10k --tasks 1
    python benchmarks/paired_steps.py --set en --tasks 2,3,5,7,8 --seeds 10

Both training programs (``MemN2N.epoch_batches`` on and off, see ``Trainer._epoch``) are compiled
in one process and their calls (a chunk of epochs each) alternate, so a VM whose speed drifts
slows both alike; it prints each one's milliseconds per step (all runs of the program together),
the median of the per-round ratios and the two compile times. The runs are the same either way
(tests/test_train.py checks it).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

import jax

import memjax
from memjax.data.babi import data_root
from memjax.data.dataset import load_babi
from memjax.models import MemN2N
from memjax.train.engine import Trainer
from memjax.train.protocol import build_configs


class PerStep(MemN2N):
    traits = dataclasses.replace(MemN2N.traits, epoch_batches=False)


def main(argv=None) -> int:
    memjax.configure_xla()  # one JAX device per CPU core, as the command line does
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="en-10k", help="bAbI set (default en-10k)")
    parser.add_argument("--tasks", default="1", help="tasks trained together, e.g. 2,3,5 (same steps per epoch)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10, help="calls of each program (default 10)")
    parser.add_argument("--data", default=None, help="bAbI folder (default $MEMJAX_DATA)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MEMJAX_CACHE", "off")
    tasks = [int(t) for t in args.tasks.split(",")]
    datasets = load_babi(tasks, args.set, str(data_root(args.data)), 50, joint=False, valid="release")
    configs = [build_configs("memn2n", ds, False, {}, {}) for ds in datasets]
    tcfg = configs[0][1]
    seeds = list(range(args.seeds))
    programs = {}
    for name, family in (("per epoch", MemN2N), ("per step", PerStep)):
        trainer = Trainer([family(cfg) for cfg, _ in configs], tcfg, datasets)
        one = len(datasets) == 1 and len(seeds) == 1
        state_sharding, data_sharding = trainer._shardings(len(seeds))
        data = jax.device_put(trainer.data, data_sharding)
        states = trainer.initial_states(seeds, sharding=state_sharding)
        t = time.perf_counter()
        compiled = trainer._chunk_fns[one].lower(states, 0, data).compile(trainer._compiler_options())
        programs[name] = {"fn": compiled, "states": states, "data": data, "trainer": trainer,
                          "compile": time.perf_counter() - t, "times": []}
    total = tcfg.total_epochs
    for r in range(args.rounds + 1):  # the first round warms up and is not counted
        for name in (list(programs) if r % 2 == 0 else list(programs)[::-1]):
            p = programs[name]
            epoch0 = (r * p["trainer"].chunk) % total
            t = time.perf_counter()
            p["states"], _ = p["fn"](p["states"], epoch0, p["data"])
            jax.block_until_ready(p["states"])
            if r:
                p["times"].append(time.perf_counter() - t)
    trainer = programs["per epoch"]["trainer"]
    steps = trainer.chunk * trainer.steps_per_epoch
    for name, p in programs.items():
        print(f"{name:9s}: {1000 * statistics.median(p['times']) / steps:.4f} ms a step (median of {args.rounds}), "
              f"compiled in {p['compile']:.2f} s")
    ratios = [a / b for a, b in zip(programs["per epoch"]["times"], programs["per step"]["times"])]
    print(f"per epoch / per step: {statistics.median(ratios):.3f} (median of the rounds' ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
