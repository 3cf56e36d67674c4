"""memjax train --config FILE (a TOML file of the flags' values) and the grouped --help."""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memjax import MODEL_NAMES, cli
from test_cli import run


def write(path, text):
    path.write_text(text)
    return str(path)


def test_a_config_file_trains_and_the_flags_given_win(data_root, tmp_path):
    out = tmp_path / "run"
    config = write(tmp_path / "small.toml", f"""
# a small MemN2N run on bAbI task 1
tasks = [1]
seeds = 1
quiet = true
te = false              # a flag's name ...
out = {json.dumps(str(out))}

[model]
family = "memn2n"
dim = 16
hops = 2
encoding = "bow"

[train]
epochs = 3
ls_epochs = 1
lr = 0.02
random_noise = false    # ... or the config field it sets (--no-rn)
""")
    r = run(["train", "--config", config, "--epochs", "2", "--te"], env_data=data_root)
    assert r.returncode == 0, r.stderr
    assert "test error" not in r.stderr  # quiet, from the file: no progress lines
    res = json.loads((out / "results.json").read_text())
    m, t = res["config"]["model"], res["config"]["train"]
    assert (m["dim"], m["hops"], m["encoding"]) == (16, 2, "bow")  # the file's
    assert (t["ls_epochs"], t["lr"], t["random_noise"]) == (1, 0.02, False)
    assert t["epochs"] == 2 and m["temporal"] is True  # the flags', over the file's 3 and false
    assert res["model"] == "memn2n" and res["config"]["seeds"] == 1 and list(res["tasks"]) == ["1"]
    saved = json.loads((out / "run.json").read_text())  # what --resume repeats: the effective arguments
    assert saved["model_overrides"]["dim"] == 16 and saved["model_overrides"]["temporal"] is True
    assert saved["train_overrides"]["epochs"] == 2 and saved["train_overrides"]["random_noise"] is False
    assert "config" not in saved


def example_value(action):
    """A value of the right type for ``action``'s flag, not its default."""
    if action.nargs == 0:  # --te/--no-te (default None): true; --no-supervise: false
        return action.const is not False
    if action.choices:
        return list(action.choices)[-1]
    try:
        action.type("0.5")
        return 0.5
    except (ValueError, argparse.ArgumentTypeError):
        return 7


class Called(Exception):
    pass


def test_every_config_field_reaches_the_model_and_training_configs(tmp_path, monkeypatch):
    """The keys of [model] and [train] are the fields that memjax train's flags set (the overrides it passes
    to run_babi), each reaching its own field."""
    from memjax.train import protocol

    for name in ("MEMJAX_COORDINATOR", "MEMJAX_NUM_PROCESSES", "MEMJAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)

    def fake_run_babi(*args, **kwargs):
        raise Called(args, kwargs)

    monkeypatch.setattr(protocol, "run_babi", fake_run_babi)
    train = cli._subcommand(cli._parser(), "train")
    actions = {a.dest: a for a in train._actions}
    values = {table: {f: example_value(actions[d]) for f, d in keys.items() if f != "memory_size"}
              for table, keys in (("model", cli._MODEL_KEYS), ("train", cli._TRAIN_KEYS))}
    text = "memory_size = 40\n" + "".join(
        f"[{table}]\n" + "".join(f"{f} = {json.dumps(v)}\n" for f, v in fields.items())
        for table, fields in values.items())
    config = write(tmp_path / "all.toml", text)
    with pytest.raises(Called) as called:
        cli.main(["train", "--config", config, "--no-compile-cache"])
    args = called.value.args[0]
    memory, model_overrides, train_overrides = args[6], args[8], args[9]
    assert memory == 40
    assert model_overrides == values["model"]
    assert train_overrides == values["train"]


def test_the_spellings_of_a_key(tmp_path):
    """A flag's name with dashes or underscores, or the field it sets, at the top level or in its table."""
    train = cli._subcommand(cli._parser(), "train")
    spellings = {("batch_size", 8): ["batch-size = 8", "batch_size = 8", "[train]\nbatch_size = 8",
                                     "[train]\nbatch-size = 8"],
                 ("te", False): ["te = false", "temporal = false", "[model]\ntemporal = false"],
                 ("rn", False): ["rn = false", "random_noise = false", "[train]\nrandom_noise = false"],
                 ("supervise", False): ["supervise = false", "[model]\nsupervise = false"],
                 ("memory", 30): ["memory = 30", "memory_size = 30", "[model]\nmemory_size = 30"],
                 ("model", "dmn+"): ['model = "dmn+"', '[model]\nfamily = "dmn+"'],
                 ("tasks", "1,2,5-7"): ['tasks = "1,2,5-7"'],
                 ("tasks", "1,2,5"): ["tasks = [1, 2, 5]"],
                 ("tasks", "3"): ["tasks = 3"],
                 ("first_seed", 3): ["first-seed = 3", "first_seed = 3"],
                 ("lr", 1.0): ["lr = 1", "[train]\nlr = 1.0"]}
    for (dest, value), texts in spellings.items():
        for text in texts:
            assert cli._read_config(write(tmp_path / "c.toml", text + "\n"), train) == {dest: value}, text


def test_the_documented_example_reads(tmp_path):
    """docs/cli.md's example file gives the flags it says it does."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    block = re.search(r"## Config files.*?```toml\n(.*?)```", text, re.S).group(1)
    values = cli._read_config(write(tmp_path / "dmn10k.toml", block), cli._subcommand(cli._parser(), "train"))
    assert values == {"set": "en-10k", "tasks": "1,2,3", "seeds": 5, "out": "runs/dmn10k", "quiet": True,
                      "model": "dmn+", "dim": 80, "hops": 3, "dropout_at": "sentences", "batch_size": 100,
                      "lr": 0.001, "patience": 20}


@pytest.mark.parametrize("text, expected", [
    ("dimm = 20\n", "unknown key dimm (did you mean dim?)"),
    ("[train]\nseeds = 2\n", "unknown key train.seeds (seeds is a top-level key)"),
    ("[model]\nepochs = 2\n", "unknown key model.epochs (epochs is a top-level key)"),
    ('resume = "runs/a"\n', "unknown key resume (--resume is for the command line only)"),
    ('dim = "20"\n', "dim: expected a number, got \"20\""),
    ("[train]\nepochs = 2.5\n", "train.epochs: expected a whole number, got 2.5"),
    ("seeds = 0\n", "seeds: must be positive, got 0"),
    ("joint = 1\n", "joint: expected true or false, got 1"),
    ('encoding = "lstm"\n', 'encoding: expected one of "bow", "pe", got "lstm"'),
    ("tasks = 21\n", "tasks: unknown task 21"),
    ("data = 3\n", "data: expected a string, got 3"),
    ("dim = 20\n[model]\ndim = 30\n", "dim and model.dim set the same flag, --dim"),
    ("te = true\ntemporal = false\n", "te and temporal set the same flag, --te"),
    ("dim = \n", "not a valid TOML file: "),  # then tomllib's message, with the line and column
    ('model = "dmn"\n[model]\ndim = 20\n', "write family = ... in [model]"),
    (None, "config file not found"),
])
def test_bad_config_files_one_line_exit_2(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    if text is not None:
        path.write_text(text)
    r = run(["train", "--config", str(path), "--tasks", "1"])
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"memjax: error: {path}: "), r.stderr
    assert expected in lines[0], r.stderr
    assert r.stdout == ""


def test_unreadable_and_non_utf8_config_files(tmp_path):
    for path, expected in ((tmp_path, "cannot read the config file"),
                           (tmp_path / "latin1.toml", "not a valid TOML file (not UTF-8")):
        if path != tmp_path:
            path.write_bytes('set = "d\xe9j\xe0"\n'.encode("latin-1"))
        r = run(["train", "--config", str(path)])
        assert r.returncode == 2 and r.stderr.startswith(f"memjax: error: {path}: ") and expected in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


GROUPS = {  # each group's flags, in order
    "data and output": ["-h", "--config", "--data", "--set", "--tasks", "--valid", "--train-file", "--test-file",
                        "--valid-file", "--out", "--tensorboard", "--resume", "--quiet"],
    "training recipe (all models)": ["--model", "--joint", "--seeds", "--first-seed", "--epochs", "--batch-size",
                                     "--lr", "--optimizer", "--decay-every", "--cycle-epochs", "--lr-min",
                                     "--weight-decay", "--dropout",
                                     "--patience", "--dim", "--hops", "--memory"],
    "MemN2N": ["--encoding", "--pe-formula", "--attend-empty", "--te", "--tying", "--ls", "--ls-epochs", "--rn"],
    "DMN+ and DMN": ["--dropout-at", "--buckets", "--no-supervise", "--stop", "--embed-init", "--glove",
                     "--glove-freeze"],
    "MemNN": ["--adaptive", "--ngrams", "--nonlinear", "--unseen", "--margin", "--negatives"],
    "QRN and EntNet": ["--layers", "--init-std", "--slots", "--prelu-init", "--biases", "--story-mask-std"],
    "Dialog": ["--match", "--type-words"],
    "LSTM baselines": [],
    "devices, processes and compilation": ["--devices", "--coordinator", "--num-processes", "--process-id",
                                           "--compile-cache"],
}


def test_train_help_is_grouped_by_family_and_imports_no_jax():
    program = ("import sys, memjax.cli as c\n"
               "try:\n    c.main(['train', '--help'])\nexcept SystemExit as e:\n    code = e.code\n"
               "print(code, 'jax' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "100"})
    assert r.returncode == 0 and r.stdout.split()[-2:] == ["0", "False"], (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    where = [lines.index(f"{title}:") for title in GROUPS]  # each group's title, in this order
    assert where == sorted(where) and "options:" not in lines
    train = cli._subcommand(cli._parser(), "train")
    groups = {g.title: [a.option_strings[0] for a in g._group_actions] for g in train._action_groups
              if g._group_actions or g.description}
    assert groups == GROUPS


FLAGS = {  # memjax train's flags before --config and the groups: (dest, default, choices)
    "--model": ('model', 'memn2n', list(MODEL_NAMES)),
    "--data": ('data', None, None),
    "--set": ('set', 'en', None),
    "--tasks": ('tasks', None, None),
    "--joint": ('joint', False, None),
    "--seeds": ('seeds', 1, None),
    "--first-seed": ('first_seed', 0, None),
    "--valid": ('valid', 'release', ['release', 'holdout']),
    "--epochs": ('epochs', None, None),
    "--batch-size": ('batch_size', None, None),
    "--lr": ('lr', None, None),
    "--decay-every": ('decay_every', None, None),
    "--ls-epochs": ('ls_epochs', None, None),
    "--hops": ('hops', None, None),
    "--glove": ('glove', None, None),
    "--no-supervise": ('supervise', None, None),
    "--glove-freeze": ('glove_freeze', False, None),
    "--adaptive": ('adaptive', None, None),
    "--no-adaptive": ('adaptive', None, None),
    "--ngrams": ('ngrams', None, None),
    "--nonlinear": ('nonlinear', None, None),
    "--no-nonlinear": ('nonlinear', None, None),
    "--unseen": ('unseen', None, None),
    "--no-unseen": ('unseen', None, None),
    "--margin": ('margin', None, None),
    "--negatives": ('negatives', None, None),
    "--embed-init": ('embed_init', None, None),
    "--optimizer": ('optimizer', None, ['sgd', 'adagrad', 'adam', 'rmsprop']),
    "--dropout": ('dropout', None, None),
    "--dropout-at": ('dropout_at', None, ['facts', 'sentences']),
    "--weight-decay": ('weight_decay', None, None),
    "--patience": ('patience', None, None),
    "--buckets": ('buckets', None, None),
    "--dim": ('dim', None, None),
    "--memory": ('memory', 50, None),
    "--encoding": ('encoding', None, ['bow', 'pe']),
    "--pe-formula": ('pe_formula', None, ['paper', 'official']),
    "--attend-empty": ('attend_empty', None, None),
    "--no-attend-empty": ('attend_empty', None, None),
    "--te": ('te', None, None),
    "--no-te": ('te', None, None),
    "--stop": ('stop', None, None),
    "--no-stop": ('stop', None, None),
    "--ls": ('ls', None, None),
    "--no-ls": ('ls', None, None),
    "--rn": ('rn', None, None),
    "--no-rn": ('rn', None, None),
    "--tying": ('tying', None, ['adjacent', 'layerwise']),
    "--compile-cache": ('compile_cache', True, None),
    "--no-compile-cache": ('compile_cache', True, None),
    "--devices": ('devices', None, None),
    "--coordinator": ('coordinator', None, None),
    "--num-processes": ('num_processes', None, None),
    "--process-id": ('process_id', None, None),
    "--train-file": ('train_file', None, None),
    "--test-file": ('test_file', None, None),
    "--valid-file": ('valid_file', None, None),
    "--out": ('out', None, None),
    "--resume": ('resume', None, None),
    "--quiet": ('quiet', False, None),

}


def test_the_flags_keep_their_names_and_defaults():
    """The command line is an interface that scripts rely on: every flag it had keeps its name, its dest,
    its default and its choices (flags may be added)."""
    train = cli._subcommand(cli._parser(), "train")
    now = {s: (a.dest, a.default, list(a.choices) if a.choices else None)
           for a in train._actions for s in a.option_strings}
    assert {flag: now.get(flag) for flag in FLAGS} == FLAGS


def test_a_byte_order_mark_is_read_and_pipes_are_refused(tmp_path):
    """Windows editors start UTF-8 files with a byte-order mark: it is not TOML, and not refused; a pipe
    (or a device) would be read without end."""
    train = cli._subcommand(cli._parser(), "train")
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeffseeds = 3\n[model]\ndim = 16\n".encode())
    assert cli._read_config(str(path), train) == {"seeds": 3, "dim": 16}
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for bad, kind in ((fifo, "not a regular file: a device, pipe or socket"), ("/dev/zero", "not a regular file")):
        with pytest.raises(ValueError, match="^" + re.escape(f"{bad}: cannot read the config file ({kind}")):
            cli._read_config(str(bad), train)
