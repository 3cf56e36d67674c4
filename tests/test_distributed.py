"""Two local processes training together through jax.distributed (JAX's gloo collectives on CPU)."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from test_cli import MEMJAX

WORKER = textwrap.dedent("""
    import hashlib, json, sys
    from memjax.distributed import initialize
    initialize(sys.argv[1], 2, int(sys.argv[2]))
    import jax, numpy as np
    from memjax.data.generate import single_fact
    from memjax.models import MemN2N, MemN2NConfig
    from memjax.models.memn2n import MemN2NRecipe
    from memjax.train.engine import Trainer

    ds = single_fact(256, 32, 64, story_length=6, seed=0)
    trainer = Trainer(MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6)), MemN2NRecipe(epochs=6, ls_epochs=2), ds)
    fit = trainer.fit([0])
    digest = hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in jax.tree.leaves(fit.params))).hexdigest()
    local = [d.process_index for d in trainer.placement.batch.mesh.devices.flat]
    print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(), "digest": digest,
                      "mesh_processes": local, "test_error": float(fit.errors["test"][0])}))
""")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",)}
    env.update(MEMJAX_CPU_DEVICES="1", MEMJAX_CACHE="off", **extra)
    return env


def _launch(commands, env):
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for c in commands]
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outs.append((p.returncode, out, err))
    return outs


def test_two_processes_train_together_and_agree_on_the_parameters():
    address = f"127.0.0.1:{_port()}"
    outs = _launch([[sys.executable, "-c", WORKER, address, str(i)] for i in range(2)], _env())
    results = []
    for rc, out, err in outs:
        assert rc == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["process"] for r in results] == [0, 1] and all(r["processes"] == 2 for r in results)
    assert results[0]["mesh_processes"] == [0, 1]  # the batch is split over both processes' devices
    assert results[0]["digest"] == results[1]["digest"]  # the same final parameters, bit for bit
    assert results[0]["test_error"] == results[1]["test_error"]


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_two_processes_from_the_command_line(data_root, tmp_path):
    address = f"127.0.0.1:{_port()}"
    common = ["train", "--tasks", "1", "--epochs", "3", "--ls-epochs", "1", "--quiet", "--out", str(tmp_path / "run"),
              "--num-processes", "2"]
    env = _env(MEMJAX_DATA=str(data_root), MEMJAX_COORDINATOR=address)
    outs = _launch([MEMJAX + common + ["--process-id", str(i)] for i in range(2)], env)
    for rc, out, err in outs:
        assert rc == 0, err[-2000:]
    tables = [out[out.index("memn2n on"):].split("time:")[0] for _, out, _ in outs]  # (gloo logs to stdout too)
    assert tables[0] == tables[1] and "test err" in tables[0]  # both processes report the same errors
    res = json.loads((tmp_path / "run" / "results.json").read_text())  # written by process 0 only
    assert set(res["tasks"]) == {"1"}
