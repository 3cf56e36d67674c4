"""Throughput of memjax's models: training and inference examples/s over batch and memory sizes.

Commands (repository root; no data needed, the stories are generated):

    python benchmarks/throughput.py            # the full table (about 5 minutes on a 2-core CPU)
    python benchmarks/throughput.py --quick    # a smaller table, under a minute (CI runs it)
    python benchmarks/throughput.py --batches 32 --memories 50 --runs 1 --long 1000   # mostly the DMN rows

Everything is measured in one process, one thing at a time:

- ``peak``: GFLOP/s of a large float32 matrix product (n x n, median of 5), on one device and
  split over all local devices; the better of the two is this machine's matrix-product peak.
- per model and (batch, memory, runs), on generated single-supporting-fact stories of ``memory``
  statements (:mod:`memjax.data.generate`), with the model's default recipe:
  - ``compile_s``: compiling the training program (the engine's: epochs in ``lax.scan``, runs
    vmapped) and the evaluation program side by side, as ``memjax train`` does;
  - ``train_ex_s``: training examples per second over all runs, from the engine's own timing of
    whole epochs (8 steps each, plus a validation pass over ``batch`` examples);
  - ``infer_ex_s``: answers per second of one jitted forward pass over a batch (median);
  - ``program_mb``: the training program's memory as XLA plans it (arguments, outputs and
    temporaries: ``memory_analysis``), and ``rss_mb``, the process's peak resident memory so far;
  - ``gflop_s`` and ``peak_share``: one training step's FLOPs (XLA's ``cost_analysis``) times the
    steps run, over the training time, and that rate as a share of the measured peak.
- DMN+ and DMN training examples/s at the DMN+ recipe's batch 100 and hidden size 80 on bAbI-10k
  task 1 (:func:`dmn_rows`), one run and two runs at once (one per core), beside a PyTorch DMN+
  (benchmarks/torch_dmn_plus.py) timed in the same process when torch is installed; the same rows
  for the other models with their own recipes (``--dmn``: MemNN, the LSTM baselines, QRN at its
  10k recipe's batch 128 and d = 200, EntNet at batch 32 and d = 100).
- QRN's recurrence as an associative scan against the sequential loop at 50, 1,000 and 10,000
  statements (:func:`qrn_scan_rows`, ``--qrn-scan``).
- Dialog bAbI: MemN2N with match type at its recipe on tasks 1 and 5 (:func:`dialog_rows`, ``--dialog``).

Prints a table and writes JSON (``--out``, default benchmarks/results/throughput.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import memjax
from memjax.data.generate import single_fact
from memjax.models import FAMILIES, MemN2N
from memjax.train.engine import Trainer, occupancy
from memjax.train.protocol import build_configs

STEPS = 8  # training steps per epoch in every row
RECIPE_ROWS = ("dmn+", "dmn", "memnn", "lstm", "attn-lstm", "qrn", "entnet")  # trained with their own recipes on bAbI-10k task 1


def _median_seconds(fn, repeats: int = 5, min_time: float = 0.2) -> float:
    """Median wall time of ``fn()`` (blocking), each sample repeated to last at least ``min_time``."""
    jax.block_until_ready(fn())
    t = time.perf_counter()
    jax.block_until_ready(fn())
    inner = max(1, int(min_time / max(time.perf_counter() - t, 1e-6)))
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            out = fn()
        jax.block_until_ready(out)
        samples.append((time.perf_counter() - t) / inner)
    return statistics.median(samples)


def matmul_peak(n: int) -> dict:
    """GFLOP/s of an n x n float32 product: on one device, and row-split over all devices."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    product = jax.jit(lambda x, y: x @ y)
    one = 2 * n ** 3 / _median_seconds(lambda: product(a, b)) / 1e9
    devices = jax.local_devices()
    split = None
    if len(devices) > 1 and n % len(devices) == 0:
        mesh = Mesh(np.array(devices), ("d",))
        a_split = jax.device_put(a, NamedSharding(mesh, PartitionSpec("d", None)))
        b_all = jax.device_put(b, NamedSharding(mesh, PartitionSpec()))
        split = 2 * n ** 3 / _median_seconds(lambda: product(a_split, b_all)) / 1e9
    return {"n": n, "one_device_gflop_s": one, "all_devices_gflop_s": split, "devices": len(devices),
            "peak_gflop_s": max(one, split or 0.0)}


def _step_flops(trainer: Trainer) -> float:
    """XLA's FLOP count of one training step of one run (forward, backward and update)."""
    data = jax.tree.map(lambda a: a[0], trainer.data)
    train, b = data["train"], trainer.batch_size
    batch = {k: train[k][:b] for k in ("story", "query", "answer")}
    params = trainer.model.init(jax.random.key(0))
    opt = trainer.tx.init(params)
    draws = trainer.model.noise_draws(train["story"].shape[1], trainer.config)  # 0: no time noise
    uniforms = jnp.full((b, draws), 0.5) if draws else None

    def step(params, opt):
        grads, _ = jax.grad(trainer._loss, has_aux=True)(params, data, batch, uniforms, False)
        updates, opt = trainer.tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    cost = jax.jit(step).lower(params, opt).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0))


def measure(model: str, batch: int, memory: int, runs: int, epochs: int, peak: float) -> dict:
    ds = single_fact(STEPS * batch, batch, batch, story_length=memory, seed=batch + memory)
    mcfg, tcfg = build_configs(model, ds, False, {}, {"epochs": epochs, "ls_epochs": 1, "batch_size": batch})
    net = MemN2N(mcfg)
    trainer = Trainer(net, tcfg, ds)
    fit = trainer.fit(list(range(runs)))
    steps = trainer.steps_per_epoch * tcfg.total_epochs * runs
    train_ex_s = steps * trainer.batch_size / fit.seconds["train"]
    flops = _step_flops(trainer)
    gflop_s = flops * steps / fit.seconds["train"] / 1e9
    memory_plan = trainer.programs["train"].memory_analysis()
    program_mb = None
    if memory_plan is not None:
        program_mb = (memory_plan.argument_size_in_bytes + memory_plan.output_size_in_bytes
                      + memory_plan.temp_size_in_bytes) / 2 ** 20

    # inference: one forward pass over a batch of test questions, as the engine's evaluation does it
    params = jax.tree.map(lambda a: a[0], fit.params)  # the first run
    sentences = jnp.asarray(net.bags(ds.sentences))
    story, query = jnp.asarray(ds.test.story), jnp.asarray(net.bags(ds.test.query))
    answer = jax.jit(lambda p, s, q: jnp.argmax(net.batch_logits(p, sentences, s, q)[0], -1))
    infer_ex_s = len(ds.test) / _median_seconds(lambda: answer(params, story, query), repeats=3)
    return {"model": model, "batch": batch, "memory": memory, "runs": runs, "epochs": tcfg.total_epochs,
            "compile_s": fit.seconds["compile"], "train_s": fit.seconds["train"], "train_ex_s": train_ex_s,
            "infer_ex_s": infer_ex_s, "program_mb": program_mb,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "step_mflop": flops / 1e6, "gflop_s": gflop_s, "peak_share": gflop_s / peak}


def dmn_data():
    """bAbI-10k task 1 when the data are found ($MEMJAX_DATA or beside the checkout: docs/data.md), else generated stories like it."""
    from memjax.data.babi import DataError
    from memjax.data.dataset import load_babi

    for root in (None, str(Path(__file__).resolve().parents[2] / "shared" / "data" / "babi" / "tasks_1-20_v1-2")):
        try:
            return load_babi([1], "en-10k", root)[0], "bAbI-10k task 1"
        except DataError:
            continue
    return single_fact(9000, 1000, 1000, story_length=10, seed=1), "generated single-fact stories (memory 10)"


def dmn_rows(models: list[str], runs: list[int], epochs: int, torch_steps: int,
             buckets: list[int] = (0,)) -> tuple[list[dict], dict | None, str]:
    """Training throughput of DMN+ (batch 100) and DMN (batch 32), recipe defaults, hidden 80, on bAbI-10k task 1.

    ``train_ex_s`` counts the training examples of whole epochs (90 steps of 100) over the engine's
    training time, which also includes a validation pass (1,000 questions) per epoch. The PyTorch
    DMN+ of benchmarks/torch_dmn_plus.py is timed on the same arrays, when torch is installed.
    DMN+ is measured once per value of ``buckets`` (0: every batch at the whole memory's length, as
    the PyTorch DMN+; K: memjax's ``--buckets K``, batches of stories of one length, see
    :func:`memjax.train.engine.length_plan`).
    """
    ds, source = dmn_data()
    rows = []
    for model, k in [(m, k) for m in models for k in (buckets if m == "dmn+" else [0])]:
        for r in runs:
            # the DMN with 3 fixed passes (--no-stop), as its rows were measured before --stop became its default
            fixed = {"stop": False} if model == "dmn" else {}
            mcfg, tcfg = build_configs(model, ds, False, fixed, {"epochs": epochs, "patience": None, "buckets": k},
                                       "en-10k")  # the 10k recipes (QRN: batch 128, d = 200)
            trainer = Trainer(FAMILIES[model][0](mcfg), tcfg, ds)
            fit = trainer.fit(list(range(r)))
            steps = trainer.steps_per_epoch * epochs * r
            rows.append({"model": model, "buckets": k, "batch": trainer.batch_size, "dim": mcfg.dim, "memory": trainer.memory,
                         "runs": r, "epochs": epochs, "compile_s": fit.seconds["compile"],
                         "train_s": fit.seconds["train"], "train_ex_s": steps * trainer.batch_size / fit.seconds["train"],
                         "test_error": float(np.min(fit.errors["test"]))})
    torch_row = None
    if torch_steps and importlib.util.find_spec("torch") is not None:  # in a fresh process (see torch_dmn_plus)
        with tempfile.TemporaryDirectory() as tmp:
            arrays = Path(tmp) / "arrays.npz"
            np.savez(arrays, sentences=ds.sentences, story=ds.train.story[:, :occupancy(ds)], query=ds.train.query,
                     answer=ds.train.answer, vocab=len(ds.vocab))
            script = Path(__file__).resolve().parent / "torch_dmn_plus.py"
            done = subprocess.run([sys.executable, str(script), str(arrays), str(torch_steps)], capture_output=True,
                                  text=True, timeout=1800)
        if done.returncode == 0:
            torch_row = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            print(f"(the PyTorch DMN+ failed: {done.stderr.strip().splitlines()[-1:]})")
    return rows, torch_row, source


def dialog_rows(tasks: list[int], epochs: int) -> list[dict]:
    """Training throughput of MemN2N with match type on dialog bAbI (``memjax train --set dialog``'s recipe,
    whole dialogs in memory), one run per task: training examples of whole epochs per second of the
    engine's training time (a dev pass per epoch included). Skipped, with a line, without the data."""
    from memjax.data.babi import DataError
    from memjax.data.dialog import load_dialog_task
    from memjax.data.download import dialog_root

    try:
        root = dialog_root()
    except DataError as e:
        print(f"(dialog bAbI rows skipped: {e})")
        return []
    rows = []
    for task in tasks:
        ds = load_dialog_task(task, root, 1000)
        mcfg, tcfg = build_configs("memn2n-dialog", ds, False, {}, {"epochs": epochs, "patience": None}, "dialog")
        trainer = Trainer(FAMILIES["memn2n-dialog"][0](mcfg), tcfg, ds)
        fit = trainer.fit([0])
        steps = trainer.steps_per_epoch * epochs
        rows.append({"task": task, "batch": trainer.batch_size, "dim": mcfg.dim, "memory": trainer.memory,
                     "candidates": len(mcfg.candidates), "epochs": epochs, "compile_s": fit.seconds["compile"],
                     "train_s": fit.seconds["train"], "train_ex_s": steps * trainer.batch_size / fit.seconds["train"]})
    return rows


def long_stories(lengths: list[int], questions: int = 8, chunk: int = 4096) -> list[dict]:
    """Answering over one generated story of L statements: latency and memory against L.

    A model is trained on 50-statement stories (the default recipe without linear start, 40 epochs,
    a few seconds), then reads each
    long story through :meth:`MemN2N.long_logits` (chunked scoring, streaming softmax; its
    temporal tables extended by repeating their last row). Latency is the median wall time of one
    question (batch 1, compiled once per length); memory is XLA's plan for that program.
    """
    short = single_fact(2000, 100, 200, story_length=50, seed=7)
    # linear start diverges on these always-full memories (measured: 100% error); without it, ~2-4%
    mcfg, tcfg = build_configs("memn2n", short, False, {}, {"linear_start": False, "epochs": 40, "decay_every": 10})
    fit = Trainer(MemN2N(mcfg), tcfg, short).fit([0])
    trained = jax.tree.map(lambda a: a[0], fit.params)
    rows = []
    for length in lengths:
        ds = single_fact(1, 1, questions, story_length=length, seed=length)
        cfg = dataclasses.replace(mcfg, memory_size=length)
        net = MemN2N(cfg)
        params = net.grow_memory(trained, length)
        bags = jnp.asarray(net.bags(ds.sentences))
        queries = jnp.asarray(net.bags(ds.test.query))
        stories = jnp.asarray(ds.test.story)
        fn = jax.jit(lambda p, s, q: jnp.argmax(net.long_logits(p, bags, s, q, chunk=chunk), -1))
        t0 = time.perf_counter()
        compiled = fn.lower(params, stories[:1], queries[:1]).compile()
        compile_s = time.perf_counter() - t0
        latency = _median_seconds(lambda: compiled(params, stories[:1], queries[:1]), repeats=5, min_time=0.5)
        right = sum(int(compiled(params, stories[i:i + 1], queries[i:i + 1])[0]) == int(ds.test.answer[i])
                    for i in range(questions))
        plan = compiled.memory_analysis()
        mb = None if plan is None else (plan.argument_size_in_bytes + plan.output_size_in_bytes
                                        + plan.temp_size_in_bytes) / 2 ** 20
        rows.append({"statements": length, "latency_s": latency, "compile_s": compile_s, "program_mb": mb,
                     "temp_mb": None if plan is None else plan.temp_size_in_bytes / 2 ** 20,
                     "right": right, "questions": questions, "trained_test_error": float(fit.errors["test"][0])})
    return rows


def qrn_scan_rows(lengths: list[int], batch: int = 32, dim: int = 50) -> list[dict]:
    """QRN's recurrence as an associative scan against the sequential loop, per story length.

    One training step's work of a 2-layer bidirectional QRN stack (:func:`memjax.ops.qrn_stack`) on
    random sentences: the gradient of a loss of its last state with respect to the layers' weights,
    for ``batch`` stories of T sentences; median wall time of the compiled step, and the ratio.
    """
    from memjax.ops.qrn import qrn_init, qrn_stack

    rows = []
    for t in lengths:
        k = jax.random.split(jax.random.key(t), 3)
        x = 0.3 * jax.random.normal(k[0], (batch, t, dim))
        q = 0.3 * jax.random.normal(k[1], (batch, dim))
        mask = jnp.ones((batch, t), bool)
        layers = [qrn_init(k[2], dim, bidirectional=True)] * 2
        row = {"statements": t, "batch": batch, "dim": dim}
        for name, parallel in (("associative", True), ("sequential", False)):
            def loss(layers, parallel=parallel):
                h, _ = jax.vmap(lambda xi, qi, mi: qrn_stack(layers, xi, qi, mi, True, parallel))(x, q, mask)
                return jnp.sum(h[:, -1] ** 2)
            step = jax.jit(jax.grad(loss))
            t0 = time.perf_counter()
            jax.block_until_ready(step(layers))
            row[f"{name}_compile_s"] = time.perf_counter() - t0
            row[f"{name}_s"] = _median_seconds(lambda: step(layers), repeats=5, min_time=0.3)
        row["sequential_over_associative"] = row["sequential_s"] / row["associative_s"]
        rows.append(row)
    return rows


def _print_table(title: str, head: str, lines: list[str]) -> None:
    """A blank line, the title, the header over a rule, the rows."""
    print("\n" + title)
    print(head)
    print("-" * len(head))
    for line in lines:
        print(line, flush=True)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv=None):
    memjax.configure_xla()  # one JAX device per CPU core, as the command line does
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smaller table in under a minute (CI)")
    p.add_argument("--models", default="memn2n", help="comma-separated model names (default memn2n)")
    p.add_argument("--batches", help="batch sizes at memory 50 (default 32,128,512,1024,4096; quick 32,512)")
    p.add_argument("--memories", help="memory sizes at batch 32 (default 50,500,2000,10000; quick 50,500)")
    p.add_argument("--runs", help="vmapped runs of an extra batch-32, memory-50 row (default 10)")
    p.add_argument("--long", help="story lengths for answering over long stories (default 1000,10000,100000; "
                                   "quick 1000,10000)")
    p.add_argument("--epochs", type=int, help="epochs per row after 1 linear-start epoch (default 3; quick 2)")
    p.add_argument("--dmn", default=None, help="models of the recipe rows on bAbI-10k task 1 (default "
                   f"{','.join(RECIPE_ROWS)}; quick dmn+; none: skip)")
    p.add_argument("--dmn-runs", default=None, help="runs trained at once in the DMN rows (default 1,2; quick 1)")
    p.add_argument("--dmn-buckets", default=None,
                   help="DMN+ rows with these --buckets settings (0: off; default 0,5; quick 0)")
    p.add_argument("--dmn-epochs", type=int, help="epochs per DMN row (default 3; quick 1)")
    p.add_argument("--dialog", default=None, help="dialog bAbI tasks of the dialog rows (default 1,5; quick 1; none: skip)")
    p.add_argument("--dialog-epochs", type=int, help="epochs per dialog row (default 1)")
    p.add_argument("--torch-steps", type=int, default=30, help="timed steps of the PyTorch DMN+ (0: skip)")
    p.add_argument("--qrn-scan", default=None,
                   help="story lengths of QRN's associative-against-sequential scan rows (default 50,1000,10000; "
                        "quick 50,1000; none: skip)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "throughput.json"))
    args = p.parse_args(argv)
    batches = _ints(args.batches or ("32,512" if args.quick else "32,128,512,1024,4096"))
    memories = _ints(args.memories or ("50,500" if args.quick else "50,500,2000,10000"))
    runs = _ints(args.runs or "10")
    epochs = args.epochs or (2 if args.quick else 3)

    t0 = time.perf_counter()
    peak = matmul_peak(1024 if args.quick else 2048)
    print(f"matrix-product peak: {peak['peak_gflop_s']:.0f} GFLOP/s (n={peak['n']}: one device "
          f"{peak['one_device_gflop_s']:.0f}, over {peak['devices']} devices {peak['all_devices_gflop_s'] or 0:.0f})")
    configs = [(b, 50, 1) for b in batches] + [(32, m, 1) for m in memories if m != 50 or 32 not in batches]
    configs += [(32, 50, r) for r in runs if r > 1]
    head = (f"{'model':>7} {'batch':>5} {'memory':>6} {'runs':>4} {'compile s':>9} {'train ex/s':>11} "
            f"{'infer ex/s':>11} {'program MB':>10} {'GFLOP/s':>8} {'of peak':>7}")
    print(head)
    print("-" * len(head))
    rows = []
    for model in args.models.split(","):
        for batch, memory, r in configs:
            row = measure(model, batch, memory, r, epochs, peak["peak_gflop_s"])
            rows.append(row)
            mb = f"{row['program_mb']:10.1f}" if row["program_mb"] is not None else f"{'-':>10}"
            print(f"{model:>7} {batch:>5} {memory:>6} {r:>4} {row['compile_s']:9.2f} {row['train_ex_s']:11,.0f} "
                  f"{row['infer_ex_s']:11,.0f} {mb} {row['gflop_s']:8.1f} {100 * row['peak_share']:6.1f}%", flush=True)
    dmn_models = [m for m in (args.dmn or ("dmn+" if args.quick else ",".join(RECIPE_ROWS))).split(",")
                  if m and m != "none"]
    d_rows, torch_row, source = ([], None, "")
    if dmn_models:
        d_rows, torch_row, source = dmn_rows(dmn_models, _ints(args.dmn_runs or ("1" if args.quick else "1,2")),
                                             args.dmn_epochs or (1 if args.quick else 3), args.torch_steps,
                                             _ints(args.dmn_buckets or ("0" if args.quick else "0,5")))
        print(f"\nTraining on {source} with each model's recipe (batch: DMN+ 100, QRN 128, the others 32; DMN hidden 80) "
              f"(examples/s of whole epochs, validation included)")
        head = f"{'model':>9} {'buckets':>7} {'batch':>5} {'runs':>4} {'memory':>6} {'compile s':>9} {'train ex/s':>11} {'vs PyTorch':>10}"
        print(head)
        print("-" * len(head))
        for r in d_rows:
            ratio = f"{r['train_ex_s'] / torch_row['train_ex_s']:9.1f}x" if torch_row and r["model"] == "dmn+" else f"{'':>10}"
            print(f"{r['model']:>9} {r['buckets'] or '-':>7} {r['batch']:>5} {r['runs']:>4} {r['memory']:>6} {r['compile_s']:9.1f} {r['train_ex_s']:11,.0f} {ratio}",
                  flush=True)
        if torch_row:
            print(f"{'torch':>9} {'-':>7} {100:>5} {1:>4} {'':>6} {'':>9} {torch_row['train_ex_s']:11,.0f}   (PyTorch {torch_row['torch']} "
                  f"DMN+, {torch_row['threads']} threads, median of {args.torch_steps} steps)")
    scan_rows = [] if args.qrn_scan == "none" else qrn_scan_rows(
        _ints(args.qrn_scan or ("50,1000" if args.quick else "50,1000,10000")))
    if scan_rows:
        _print_table("QRN's recurrence, one training step of a 2-layer bidirectional stack (batch 32, d = 50): "
                     "associative scan against the sequential loop",
                     f"{'statements':>10} {'associative ms':>14} {'sequential ms':>13} {'seq / assoc':>11}",
                     [f"{r['statements']:>10,} {1000 * r['associative_s']:14.2f} {1000 * r['sequential_s']:13.2f} "
                      f"{r['sequential_over_associative']:10.2f}x" for r in scan_rows])
    dialog = [] if args.dialog == "none" else dialog_rows(_ints(args.dialog or ("1" if args.quick else "1,5")),
                                                           args.dialog_epochs or 1)
    if dialog:
        _print_table("Dialog bAbI, MemN2N + match type (memjax train --set dialog's recipe, whole dialogs in memory, "
                     "one run; examples/s of whole epochs, dev pass included)",
                     f"{'task':>4} {'batch':>5} {'memory':>6} {'candidates':>10} {'compile s':>9} {'train ex/s':>11}",
                     [f"{r['task']:>4} {r['batch']:>5} {r['memory']:>6} {r['candidates']:>10,} {r['compile_s']:9.1f} "
                      f"{r['train_ex_s']:11,.0f}" for r in dialog])
    long_rows = long_stories(_ints(args.long or ("1000,10000" if args.quick else "1000,10000,100000")))
    _print_table(f"answering one question over one long story (MemN2N trained on 50-statement stories, test error "
                 f"{long_rows[0]['trained_test_error']:.1f}%; chunked scoring, streaming softmax):",
                 f"{'statements':>10} {'latency ms':>10} {'compile s':>9} {'program MB':>10} {'temp MB':>8} {'right':>7}",
                 [f"{r['statements']:>10,} {1000 * r['latency_s']:10.1f} {r['compile_s']:9.2f} "
                  f"{r['program_mb'] or 0:10.1f} {r['temp_mb'] or 0:8.1f} {r['right']:>3}/{r['questions']:<3}"
                  for r in long_rows])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"date": time.strftime("%Y-%m-%d"), "device": str(jax.devices()[0]), "platform": jax.devices()[0].platform,
              "machine": platform.processor() or platform.machine(), "cores": len(jax.local_devices()),
              "jax": jax.__version__, "quick": args.quick, "peak": peak, "rows": rows, "long_stories": long_rows,
              "dmn": {"data": source, "rows": d_rows, "torch_dmn_plus": torch_row}, "qrn_scan": scan_rows,
              "dialog": dialog,
              "seconds": time.perf_counter() - t0}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
