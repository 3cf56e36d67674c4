"""Every model family implements the one interface of memjax.models.base, and the engine and front
ends use nothing else: no attribute probes of models, one prediction path for eval, ask, serve and plot."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.data.generate import single_fact
from memjax.infer import Answerer, model_data, predictions
from dialog_samples import small_task
from memjax.models import DIALOG_FAMILIES, FAMILIES
from memjax.models.base import Model, Phase, Prediction
from memjax.train.protocol import build_configs

SRC = Path(__file__).resolve().parents[1] / "src" / "memjax"
USERS = [SRC / "train", SRC / "infer.py", SRC / "cli.py", SRC / "serve", SRC / "plot.py"]
STORY = ["Mary went to the kitchen.", "John moved to the garden.", "Mary travelled to the office."]


def _sources():
    for path in USERS:
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path])


def test_no_attribute_probe_of_a_model_in_the_engine_or_the_front_ends():
    probe = re.compile(r"\b(hasattr|getattr)\(\s*([^,]*)")
    found = []
    for path in _sources():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in probe.finditer(line):
                what = m.group(2)
                if m.group(1) == "hasattr" or re.search(r"model|cfg|self\.m\b|_class", what):
                    found.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert found == []


@pytest.fixture(scope="module")
def dataset():
    return single_fact(64, 16, 16, story_length=4, people=4, places=4, seed=0)


@pytest.fixture(scope="module")
def dialogs(tmp_path_factory):
    return small_task(tmp_path_factory.mktemp("dialogs"))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_implements_the_interface(name, dataset, dialogs):
    if name in DIALOG_FAMILIES:  # they answer with candidate utterances, from dialogs
        dataset = dialogs
    cls, _ = FAMILIES[name]
    assert issubclass(cls, Model) and cls.traits.name == name
    for method in ("init", "loss", "predict"):
        assert getattr(cls, method) is not getattr(Model, method), f"{name} does not implement {method}"
    overrides = {"hops": 2} if name in ("memn2n", "dmn+", "dmn", "memnn") else {}
    mcfg, tcfg = build_configs(name, dataset, False, {**overrides, "dim": 8},
                               {"epochs": 1})
    model = cls(mcfg)
    params = model.init(jax.random.key(0))
    data = model_data(model, dataset.sentences, dataset.vocab.words)
    split = dataset.test
    batch = {"story": jnp.asarray(split.story), "query": jnp.asarray(model.query_inputs(split.query)),
             "answer": jnp.asarray(split.answer)}
    if cls.traits.uses_support:
        batch["supporting"] = jnp.asarray(np.where(split.supporting < split.story.shape[1], split.supporting, -1))
    loss, predicted = jax.jit(lambda p, d, b: model.loss(p, d, b, Phase(config=tcfg)))(params, data, batch)
    assert loss.shape == predicted.shape == (len(split),) and bool(jnp.all(jnp.isfinite(loss)))
    pred = jax.jit(model.predict)(params, data, batch)
    assert isinstance(pred, Prediction)
    np.testing.assert_array_equal(pred.answer, predicted)  # the loss's predictions are predict's
    assert pred.answer.shape == pred.probability.shape == (len(split),)
    assert bool(jnp.all((pred.probability >= 0) & (pred.probability <= 1 + 1e-6)))
    if cls.traits.attention is None:
        assert pred.attention is None
    else:
        assert pred.attention.shape[0] == len(split) and pred.attention.shape[2] == split.story.shape[1]
    if cls.traits.answers_as_words:
        assert pred.scores is None and pred.words is not None
    else:
        answers = len(mcfg.candidates) if name in DIALOG_FAMILIES else mcfg.vocab_size
        assert pred.scores.shape == (len(split), answers)
        np.testing.assert_allclose(np.asarray(pred.scores).sum(1), 1.0, rtol=1e-5)
    # the host loop of eval answers the same as the batch at once
    chunked = predictions(model, params, data, split.story, split.query, chunk=5)
    np.testing.assert_array_equal(chunked.answer, pred.answer)

    if name in DIALOG_FAMILIES:
        return  # they converse (memjax chat), not answer questions about a story
    # ask: a new story, with the family's kind of attention
    qa = Answerer("1", model, params, dataset.vocab, dataset.memory_size, [1])
    story = [s.lower().replace(".", "") for s in STORY][-dataset.memory_size:]
    a = qa.answer(story, "where is mary?")
    assert a.attention == cls.traits.attention and 0.0 <= a.probability <= 1.0 + 1e-6
    assert isinstance(a.answer, str) and a.answer
    assert len(a.hops) == (0 if cls.traits.attention is None else pred.attention.shape[1])
    for hop in a.hops:
        assert sorted(i for i, _, _ in hop) == list(range(len(story)))
        if cls.traits.attention in ("words", "chosen"):
            assert sum(w for _, _, w in hop) <= 1.0 + 1e-5
