"""Dialog bAbI: the reader, the vectorised examples, the MemN2N response selector with match type (against
NumPy), the per-dialog measure, and short trainings through the command line."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cli_run import memjax
from dialog_samples import small_task, write_task
from memjax.data.babi import DataError, parse_tasks
from memjax.data.dialog import (BOT, ENTITY_TYPES, KB, SILENCE, USER, load_dialog_task, parse_dialogs,
                                per_dialog_accuracy)
from memjax.data.dataset import UNK
from memjax.infer import model_data
from memjax.models.dialog import DialogMemN2N
from memjax.train.protocol import build_configs

@pytest.fixture(scope="module")
def real_dialogs(dialog_data) -> Path:
    return dialog_data


def test_each_bot_turn_is_an_example_with_the_dialog_so_far(tmp_path):
    files = write_task(tmp_path)
    turns = parse_dialogs(files["train"])
    assert len(turns) == 5 * 8 and [t.dialog for t in turns[:6]] == [0, 0, 0, 0, 0, 1]
    first, third, last = turns[0], turns[2], turns[4]
    assert first.history == [] and first.query == ["hello"] and first.answer == "hello what can i help you with today"
    assert third.query == [SILENCE] and third.answer == "api_call thai paris"
    assert [s for s, _ in third.history] == [USER, BOT, USER, BOT]
    # the knowledge base's results are in the memory, marked as such, before the bot proposes an option
    assert [s for s, _ in turns[3].history][-3:] == [KB, KB, KB]
    assert turns[3].history[-1] == (KB, ["resto_a", "r_phone", "resto_a_phone"])
    assert last.answer == "here it is resto_a_phone" and last.line == 8


@pytest.mark.parametrize("text, message", [
    ("1 hello\thi\nx hello\thi\n", "line 2: expected 'ID text'"),
    ("1 hello\thi\n3 hello\thi\n", "line 2: id 3 does not follow 1"),
    ("2 hello\thi\n", "line 1: a dialog starts with id 2, not 1"),
    ("1 hello\t \n", "line 1: a turn needs a bot utterance after the tab"),
    ("1 hello\thi\n99999999999 x\ty\n", "line 2: line id 99999999999 is out of range"),
    ("1 resto_a R_phone p\n", "no dialog turns"),
])
def test_malformed_dialog_files_are_one_line_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError) as e:
        parse_dialogs(path)
    assert str(path) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


def test_unreadable_dialog_files_are_one_line(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("1 caf\xe9\thi\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        parse_dialogs(tmp_path / "latin1.txt")
    with pytest.raises(DataError, match="is a folder"):
        parse_dialogs(tmp_path)
    with pytest.raises(DataError, match="file not found"):
        parse_dialogs(tmp_path / "missing.txt")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf1 hello\thi\n")  # a byte-order mark is read, not a word
    assert parse_dialogs(tmp_path / "bom.txt")[0].query == ["hello"]


def test_vectorised_examples(tmp_path):
    ds = small_task(tmp_path)
    words = ds.vocab.words
    assert ds.memory_size == 11 and len(ds.train) == 40 and len(ds.oov) == 5
    # slot 0 holds the most recent utterance, with its speaker word; the query ends with the user's
    story = [[words[w] for w in ds.sentences[row] if w] for row in ds.train.story[4] if row]
    assert story[0] == "what do you think of this option: resto_a".split() + [BOT]
    assert story[1] == [SILENCE, USER] and story[2] == ["resto_a", "r_phone", "resto_a_phone", KB]
    assert story[-1] == ["hello", USER] and len(story) == 11
    assert [words[w] for w in ds.train.query[4] if w] == ["the", "phone", "number", "please", USER]
    assert ds.candidates[ds.train.answer[4]] == "here it is resto_a_phone"
    np.testing.assert_array_equal(ds.dialogs["train"][:10], [0] * 5 + [1] * 5)
    # a word of no training or validation dialog and of no candidate is the unknown word
    assert ds.vocab.id("rome") != UNK and ds.vocab.id("zanzibar") == UNK
    assert ds.entity_types["resto_c"] == "name" and ds.entity_types["thai"] == "cuisine"
    # words of no training dialog: the OOV restaurant (in the candidates), the test dialog's new words
    assert "resto_c" in ds.unseen and "resto_c_phone" in ds.unseen and "resto_a" not in ds.unseen
    assert small_task(tmp_path / "m2", memory_size=2).train.story.shape[1] == 2


def test_a_bot_utterance_outside_the_candidates_is_one_line(tmp_path):
    files = write_task(tmp_path)
    files["candidates"].write_text("1 hello what can i help you with today\n")
    from memjax.data.dialog import parse_candidates, parse_kb, vectorize_dialogs

    splits = {k: parse_dialogs(files[k]) for k in ("train", "valid", "test")}
    with pytest.raises(DataError, match=r"train.txt, line 2: the bot utterance 'ok let me look"):
        vectorize_dialogs("t", 1, splits, parse_candidates(files["candidates"]), parse_kb(files["kb"]), None, files)


def _model(ds, **kw):
    mcfg, _ = build_configs("memn2n-dialog", ds, False, {"dim": 6, **kw}, {})
    model = DialogMemN2N(mcfg)
    return model, model.init(jax.random.key(1)), model_data(model, ds.sentences, ds.vocab.words)


def _reference(model, params, data, ds, split):
    """Logits of the module docstring's model, one example at a time, in NumPy."""
    p = jax.tree.map(np.asarray, params)
    sentences, cfg, words = np.asarray(data["sentences"]), model.cfg, ds.vocab.words
    types = dict(cfg.entity_types)
    # words of no training dialog, and unknown words, read as nothing
    A = {i: 0.0 if w in cfg.unseen or i == UNK else p["A"][i] for i, w in enumerate(words)}
    if cfg.type_words:  # a typed word adds its type's vector, unseen or not
        A = {i: a + (p["types"][ENTITY_TYPES.index(types[w])] if w in types else 0.0) for (i, a), w in zip(A.items(), words)}
    W = {i: 0.0 if w in cfg.unseen or i == UNK else p["W"][i] for i, w in enumerate(words)}
    out = []
    for rows, q_ids in zip(split.story, split.query):
        slots = [i for i, r in enumerate(rows) if r]
        memory = np.array([sum(A[w] for w in sentences[rows[i]]) + p["T"][i] for i in slots]).reshape(-1, cfg.dim)
        q = sum(A[w] for w in q_ids)
        for _ in range(cfg.hops):
            if slots:
                s = memory @ q
                w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                q = q + w @ memory
            q = p["R"] @ q
        said = {words[w] for w in np.concatenate([sentences[rows].ravel(), q_ids]) if w}
        logits = []
        for c in cfg.candidates:
            y = sum(W[ds.vocab.index[w]] for w in c.split() if w in ds.vocab.index)
            score = q @ y
            if cfg.match:
                matched = {types[w] for w in c.split() if w in types and w in said}
                score += sum(q @ p["match"][ENTITY_TYPES.index(t)] for t in matched)
            logits.append(score)
        out.append(logits)
    return np.array(out)


@pytest.mark.parametrize("match, type_words", [(True, False), (False, False), (True, True)])
def test_logits_equal_a_numpy_transcription(tmp_path, match, type_words):
    ds = small_task(tmp_path)
    model, params, data = _model(ds, match=match, hops=2, type_words=type_words)
    assert ("types" in params) == type_words
    split = ds.oov  # resto_c: a restaurant of no training dialog
    logits, attention = jax.jit(model.logits)(params, data, {"story": jnp.asarray(split.story),
                                                             "query": jnp.asarray(split.query)})
    np.testing.assert_allclose(logits, _reference(model, params, data, ds, split), rtol=2e-4, atol=2e-5)
    assert attention.shape == (len(split), 2, split.story.shape[1])
    np.testing.assert_allclose(np.asarray(attention).sum(-1)[1:], 1.0, rtol=1e-5)  # turn 1 has no memory yet
    assert float(np.abs(attention[0]).sum()) == 0.0


def test_match_features_mark_candidate_entities_said_in_the_dialog(tmp_path):
    ds = small_task(tmp_path)
    model, params, data = _model(ds)
    m = np.asarray(model.matches(data, {"story": jnp.asarray(ds.oov.story), "query": jnp.asarray(ds.oov.query)}))
    name, cuisine = ENTITY_TYPES.index("name"), ENTITY_TYPES.index("cuisine")
    option_c = ds.candidates.index("what do you think of this option: resto_c")
    option_a = ds.candidates.index("what do you think of this option: resto_a")
    api = ds.candidates.index("api_call thai paris")
    # OOV dialog (thai, rome, resto_c): turn 4 proposes an option after the results named resto_c
    assert m[3, option_c, name] == 1 and m[3, option_a, name] == 0
    assert m[1, api, cuisine] == 1 and m[0, api, cuisine] == 0  # "thai" said in turn 2, not before
    assert m[1, api, ENTITY_TYPES.index("location")] == 0  # paris was never said in this dialog


def test_type_words_let_an_unseen_entity_say_what_it_is(tmp_path):
    """resto_c is in no training dialog: without type words it reads as nothing; with them, as a restaurant's
    name. Without them the parameters are those of the model before the option, drawn alike."""
    ds = small_task(tmp_path)
    assert "resto_c" in ds.unseen and ds.entity_types["resto_c"] == "name"
    plain, p0, data = _model(ds)
    typed, p1, _ = _model(ds, type_words=True)
    assert set(p1) - set(p0) == {"types"}
    for k in p0:
        np.testing.assert_array_equal(p0[k], p1[k])  # the same draws for the same parameters
    ids = jnp.asarray([[ds.vocab.index["resto_c"], 0]])
    np.testing.assert_array_equal(plain.bags(p0, data, ids), np.zeros((1, 6)))
    np.testing.assert_allclose(typed.bags(p1, data, ids), p1["types"][None, ENTITY_TYPES.index("name")])


def test_per_dialog_accuracy():
    correct = np.array([True, True, False, True, True, True])
    assert per_dialog_accuracy(correct, np.array([0, 0, 0, 1, 1, 2])) == pytest.approx(200 / 3)
    assert per_dialog_accuracy(correct[:0], np.array([], int)) == 0.0


def test_task_lists_of_dialog_babi():
    assert parse_tasks("all", tasks=6) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(DataError, match="dialog bAbI has tasks 1 to 6"):
        parse_tasks("7", tasks=6)


def test_real_task_1(real_dialogs):
    ds = load_dialog_task(1, real_dialogs)
    assert len(ds.candidates) == 4212
    assert [len(np.unique(ds.dialogs[s])) for s in ("train", "valid", "test", "oov")] == [1000] * 4
    assert ds.entity_types["italian"] == "cuisine" and ds.entity_types["resto_rome_cheap_french_2stars"] == "name"


def _train(args, env=None, timeout=600):
    return memjax(["train", *args], env=env, timeout=timeout)  # in this process where that is the same (cli_run)


@pytest.mark.slow
def test_short_training_on_task_1_reports_both_test_sets(real_dialogs, tmp_path):
    r = _train(["--set", "dialog", "--tasks", "1", "--epochs", "3", "--data", str(real_dialogs), "--out",
                str(tmp_path / "run"), "--quiet"])
    assert r.returncode == 0, r.stderr
    assert "T1 issuing API calls" in r.stdout and "paper OOV" in r.stdout
    e = json.loads((tmp_path / "run" / "results.json").read_text())["tasks"]["1"]
    assert e["test_accuracy"] >= 95.0 and e["test_accuracy"] == pytest.approx(100 - e["test_error"])
    assert {"test_dialog_accuracy", "oov_accuracy", "oov_dialog_accuracy", "n_oov"} <= set(e)
    assert e["test_dialog_accuracy"] <= e["test_accuracy"] and e["n_oov"] == 6020


@pytest.mark.parametrize("args, message", [
    (["--set", "dialog", "--model", "qrn"], "--model qrn does not train on --set dialog"),
    (["--model", "memn2n-dialog"], "--model memn2n-dialog does not train on --set en"),
    (["--set", "dialog", "--joint"], "one model per task"),
    (["--set", "dialog", "--tasks", "7"], "dialog bAbI has tasks 1 to 6"),
    (["--set", "dialog", "--data", "/nonexistent/dialogs"], "/nonexistent/dialogs"),
    (["--set", "dialog", "--ls"], "no training option linear_start"),
])
def test_bad_dialog_commands_are_one_line(args, message, real_dialogs):
    if "--data" not in args:
        args = [*args, "--data", str(real_dialogs)]
    r = _train([*args, "--epochs", "1"], timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr and lines[-1].startswith("memjax: error: "), r.stderr
    assert message in lines[-1], r.stderr


def test_lines_end_at_newlines_only(tmp_path):
    """A Unicode line separator inside an utterance does not end the line (it separates words, as a space);
    Windows line ends are read."""
    path = tmp_path / "d.txt"
    path.write_bytes("1 hello\u2028there\thi\r\n2 <SILENCE>\tbye\r\n".encode())
    turns = parse_dialogs(path)
    assert [t.query for t in turns] == [["hello", "there"], [SILENCE]] and [t.line for t in turns] == [1, 2]
    path.write_bytes("1 hello\u2028x\ty\nx bad\n".encode())  # with splitlines the bad line would be line 3
    with pytest.raises(DataError, match=r"line 2: expected 'ID text'"):
        parse_dialogs(path)


def test_a_memory_larger_than_any_dialog_keeps_its_size_not_its_empty_slots(tmp_path):
    ds = small_task(tmp_path, memory_size=1000)
    assert ds.memory_size == 1000 and ds.train.story.shape[1] == 11  # the longest dialog so far
    with pytest.raises(DataError, match="memory size must be at least 1, got 0"):
        small_task(tmp_path / "zero", memory_size=0)
