"""Several devices: runs spread over them, or each batch split over them (data parallel)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from test_cli import run

INSPECT = textwrap.dedent("""
    import jax, json, sys
    import memjax
    memjax.configure_xla()  # MEMJAX_CPU_DEVICES=4 devices (importing memjax alone changes nothing)
    from memjax.data.generate import single_fact
    from memjax.models import MemN2N, MemN2NConfig
    from memjax.models.memn2n import MemN2NRecipe
    from memjax.train.engine import Trainer

    seen = []
    original = Trainer._loss

    def loss(self, params, data, batch, *rest):
        # runs at trace time: record how the step's batch is laid out over the devices
        jax.debug.inspect_array_sharding(batch["story"], callback=lambda s: seen.append(s))
        return original(self, params, data, batch, *rest)

    Trainer._loss = loss
    ds = single_fact(64, 16, 16, story_length=6, seed=0)
    cfg = MemN2NRecipe(epochs=2, ls_epochs=1, batch_size=32)
    trainer = Trainer(MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6)), cfg, ds,
                      devices=jax.local_devices()[:4], data_parallel=True)
    fit = trainer.fit([0])
    s = seen[0]
    print(json.dumps({"devices": len(jax.local_devices()), "sharding_devices": len(s.device_set),
                      "shard": list(s.shard_shape((32, 6))),  # (batch, memory): one run is traced unbatched
                      "all_reduce": "all-reduce" in trainer.programs["train"].as_text()}))
""")


def test_the_batch_is_split_over_four_devices():
    env = {**os.environ, "MEMJAX_CPU_DEVICES": "4"}
    env.pop("XLA_FLAGS", None)
    r = subprocess.run([sys.executable, "-c", INSPECT], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4 and out["sharding_devices"] == 4
    assert out["shard"] == [8, 6]  # each device holds 8 of the batch's 32 stories
    assert out["all_reduce"]  # the gradients are summed across the devices


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_four_devices_reach_the_error_of_one(data_root, tmp_path):
    errors = {}
    for n in (1, 4):
        r = run(["train", "--tasks", "1", "--devices", str(n), "--quiet", "--out", str(tmp_path / str(n))],
                env_data=data_root, MEMJAX_CPU_DEVICES="4", XLA_FLAGS="")
        assert r.returncode == 0, r.stderr
        res = json.loads((tmp_path / str(n) / "results.json").read_text())
        assert res["config"]["devices"] == n
        errors[n] = res["tasks"]["1"]["test_error"]
    assert abs(errors[4] - errors[1]) <= 0.5, errors


def test_more_devices_than_there_are_is_one_line(data_root):
    r = run(["train", "--tasks", "1", "--devices", "9"], env_data=data_root, MEMJAX_CPU_DEVICES="2", XLA_FLAGS="")
    assert r.returncode == 2 and "--devices 9: this process has 2 device(s)" in r.stderr
