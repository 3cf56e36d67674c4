"""Importing memjax changes nothing global; the command line and configure_xla() set the CPU split."""

import json
import os
import subprocess
import sys

import memjax
from memjax.runtime import DEVICE_COUNT_FLAG, YNN_FLAG, xla_flags

SNAPSHOT = """
import json, os, sys
import jax
before_env = dict(os.environ)
before_cfg = {k: repr(v) for k, v in jax.config.values.items()}
import memjax, memjax.models, memjax.ops, memjax.data, memjax.train.engine, memjax.infer
for extra in sys.argv[1:]:
    __import__(extra)
after_cfg = {k: repr(v) for k, v in jax.config.values.items()}
print(json.dumps({"env": [k for k in set(before_env) | set(os.environ) if before_env.get(k) != os.environ.get(k)],
                  "cfg": [k for k in before_cfg if before_cfg[k] != after_cfg.get(k)],
                  "devices": jax.local_device_count()}))
"""


def _run(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "MEMJAX_CPU_DEVICES")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full, timeout=120)


def test_import_changes_no_environment_variable_and_no_jax_setting():
    extras = ["memjax.nn"] if _has("memjax.nn") else []
    r = _run(SNAPSHOT, *extras, XLA_FLAGS="--xla_cpu_enable_fast_math=false")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"env": [], "cfg": [], "devices": 1}


def test_configure_xla_splits_the_cpu_before_jax_starts_and_keeps_given_flags():
    code = ("import os, memjax; assert memjax.configure_xla(cpu_devices=3); import jax; "
            "print(os.environ['XLA_FLAGS']); print(jax.local_device_count()); print(memjax.configure_xla())")
    r = _run(code, XLA_FLAGS="--xla_cpu_enable_fast_math=false")
    assert r.returncode == 0, r.stderr
    flags, devices, again = r.stdout.split("\n")[:3]
    assert flags.startswith("--xla_cpu_enable_fast_math=false ") and f"{DEVICE_COUNT_FLAG}=3" in flags
    assert devices == "3"
    assert again == "False"  # JAX has started: the flags can no longer change


def test_xla_flags_leave_what_the_user_set():
    assert xla_flags(f"{DEVICE_COUNT_FLAG}=5", cpu_devices=2, ynn_fusions=False) == f"{DEVICE_COUNT_FLAG}=5 {YNN_FLAG}="
    assert xla_flags("", cpu_devices=1, ynn_fusions=True) == ""
    assert xla_flags("", cpu_devices=100, ynn_fusions=True) == f"{DEVICE_COUNT_FLAG}=64"


def test_command_line_splits_the_cpu_at_start_up(tmp_path):
    r = _run("import os, sys, memjax.cli\nmemjax.cli.main(['generate', '--out', sys.argv[1], '--questions', '2'])\n"
             "print(os.environ.get('XLA_FLAGS', ''))", str(tmp_path / "g.txt"), MEMJAX_CPU_DEVICES="2")
    assert r.returncode == 0, r.stderr
    assert f"{DEVICE_COUNT_FLAG}=2" in r.stdout.strip().splitlines()[-1]


def test_public_api_from_the_package():
    for name in memjax.__all__:
        assert getattr(memjax, name) is not None, name
    assert memjax.Trainer is memjax.train.engine.Trainer
    from importlib.metadata import version

    assert version("memjax") == memjax.__version__  # one source: the package's __version__


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
