import dataclasses
import re
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memjax.data.babi import parse_lines
from memjax.data.dataset import load_babi, vectorize
from memjax.models import MemN2N, MemN2NConfig
from memjax.train import engine
from memjax.models.memn2n import MemN2NRecipe
from memjax.train import evaluate, placement, stopping
from memjax.train.engine import Trainer
from memjax.train.optim import clip_each_by_norm, multiply_by, step_decay_schedule


def toy_dataset(n_stories=40, seed=0, n_train=30):
    """Tiny single-supporting-fact stories, generated here."""
    r = np.random.default_rng(seed)
    people, places = ["mary", "john", "sandra"], ["kitchen", "garden", "office", "hallway"]
    lines = []
    for _ in range(n_stories):
        where = {}
        n = 0
        for _ in range(4):
            p, loc = r.choice(people), r.choice(places)
            n += 1
            lines.append(f"{n} {p} went to the {loc}.")
            where[p] = (loc, n)
        p = r.choice(list(where))
        n += 1
        lines.append(f"{n} Where is {p}?\t{where[p][0]}\t{where[p][1]}")
    qs = parse_lines(lines)
    return vectorize("toy", qs[:n_train], qs[n_train:n_train + 5], qs[n_train + 5:], memory_size=6)


def test_clip_each_matrix_separately():
    grads = {"a": jnp.full((2, 2), 30.0), "b": jnp.full((3,), 1.0)}
    out, _ = clip_each_by_norm(40.0).update(grads, optax.EmptyState())
    np.testing.assert_allclose(np.linalg.norm(out["a"]), 40.0, rtol=1e-6)  # 60 -> 40
    np.testing.assert_allclose(out["b"], grads["b"])  # untouched: sqrt(3) < 40


def test_clip_each_matrix_of_one_shape_by_its_own_norm():
    # several matrices of one shape (MemN2N's embeddings): each is clipped by its own norm, not the group's
    rng = np.random.default_rng(0)
    grads = {"embed": [jnp.asarray(rng.normal(size=(5, 3)) * s, jnp.float32) for s in (1.0, 30.0, 0.5, 100.0)],
             "temporal": [jnp.asarray(rng.normal(size=(4, 3)) * s, jnp.float32) for s in (50.0, 2.0)]}
    out, _ = clip_each_by_norm(40.0).update(grads, optax.EmptyState())
    for g, o in zip(jax.tree.leaves(grads), jax.tree.leaves(out)):
        g, o = np.asarray(g), np.asarray(o)
        norm = np.linalg.norm(g)
        np.testing.assert_allclose(o, g * min(1.0, 40.0 / norm), rtol=1e-6)
        assert np.linalg.norm(o) <= 40.0 * (1 + 1e-6)
    assert [np.linalg.norm(np.asarray(o)) > 39.9 for o in out["embed"]] == [False, True, False, True]


def test_multiply_by_freezes_padding_rows():
    mask = {"E": jnp.array([[0.0], [1.0], [1.0]])}
    out, _ = multiply_by(mask).update({"E": jnp.ones((3, 2))}, optax.EmptyState())
    np.testing.assert_array_equal(out["E"], [[0, 0], [1, 1], [1, 1]])


def test_schedule_linear_start_then_halving():
    s = step_decay_schedule(0.01, steps_per_epoch=10, decay_every=25, ls_epochs=20, ls_lr=0.005)
    lr_at = lambda epoch: float(s(epoch * 10 + 3))
    assert lr_at(0) == pytest.approx(0.005) and lr_at(19) == pytest.approx(0.005)
    assert lr_at(20) == pytest.approx(0.01) and lr_at(44) == pytest.approx(0.01)
    assert lr_at(45) == pytest.approx(0.005) and lr_at(70) == pytest.approx(0.0025)
    plain = step_decay_schedule(0.01, 10, 25)
    assert float(plain(0)) == pytest.approx(0.01) and float(plain(250)) == pytest.approx(0.005)


def test_triangular_schedule_cycles_between_its_bounds():
    from memjax.train.optim import triangular_schedule

    s = triangular_schedule(0.0002, 0.01, steps_per_epoch=4, cycle_epochs=10)  # half a cycle: 40 steps
    at = lambda step: float(s(step))
    assert at(0) == pytest.approx(0.0002) and at(40) == pytest.approx(0.01) and at(80) == pytest.approx(0.0002)
    assert at(20) == pytest.approx(0.0051) and at(60) == pytest.approx(0.0051)  # linear both ways
    assert at(120) == pytest.approx(0.01) and at(100) == pytest.approx(at(20))  # and again


def test_cycle_epochs_replaces_the_recipes_halving_and_is_checked():
    from memjax.train.config import TrainConfig
    from memjax.train.optim import recipe
    from memjax.train.recipes import RECIPES, with_overrides

    cfg = with_overrides(RECIPES["entnet"], "entnet", {"cycle_epochs": 2, "lr_min": 0.001})
    assert (cfg.cycle_epochs, cfg.lr_min, cfg.decay_every) == (2, 0.001, None)
    opt = recipe(cfg, 1, {"w": 1.0})  # one step per epoch: up over steps 0-2, down over 2-4
    params, state, steps = {"w": jnp.zeros(2)}, None, []
    state = opt.init(params)
    for _ in range(5):  # Adam's step with a constant gradient: the rate
        up, state = opt.update({"w": jnp.array([1.0, -2.0])}, state, params)
        steps.append(float(jnp.abs(up["w"][0])))
    np.testing.assert_allclose(steps, [0.001, 0.0055, 0.01, 0.0055, 0.001], rtol=1e-3)
    for kw, message in [({"cycle_epochs": 0}, "cycle_epochs must be at least 1"),
                        ({"cycle_epochs": 5, "optimizer": "sgd"}, "cycle_epochs is for adam, not sgd"),
                        ({"cycle_epochs": 5, "optimizer": "adam", "decay_every": 25}, "replaces decay_every"),
                        ({"cycle_epochs": 5, "optimizer": "adam", "lr_min": 0.02}, "lr_min must be in [0, lr = 0.01]")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            TrainConfig(**kw)
    with pytest.raises(ValueError, match=re.escape("give cycle_epochs (--cycle-epochs) too")):
        with_overrides(RECIPES["entnet"], "entnet", {"lr_min": 0.001})  # a low point of no cycle


def small_config(**kw):
    return MemN2NRecipe(**{"epochs": 4, "ls_epochs": 2, "batch_size": 8, **kw})


def test_vmapped_runs_equal_separate_runs():
    """Two runs vmapped against each run alone (a single run is traced without vmap: the same math)."""
    ds = toy_dataset()
    model = MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8))
    both = Trainer(model, small_config(), ds).fit([0, 1])
    for i, seed in enumerate([0, 1]):
        alone = Trainer(model, small_config(), ds).fit([seed])
        for a, b in zip(jax.tree.leaves(both.params), jax.tree.leaves(alone.params)):
            np.testing.assert_allclose(a[i], b[0], rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(both.history["loss"][i], alone.history["loss"][0], rtol=1e-5)


def test_training_compiles_once(monkeypatch):
    """The chunk program is traced once however many chunks the run has."""
    traces = []
    original = Trainer._run_chunk

    def counting(self, *args):
        traces.append(1)
        return original(self, *args)

    monkeypatch.setattr(Trainer, "_run_chunk", counting)
    ds = toy_dataset()
    trainer = Trainer(MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8)),
                      small_config(epochs=18), ds)
    assert trainer.config.total_epochs // trainer.chunk >= 5
    fit = trainer.fit([0, 1, 2])
    assert len(traces) == 1
    assert fit.history["loss"].shape == (3, 20)


def test_padding_rows_stay_zero_and_loss_falls():
    ds = toy_dataset()
    model = MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8))
    fit = Trainer(model, small_config(epochs=30), ds).fit([0])
    for E in fit.params["embed"]:
        assert np.all(np.asarray(E)[:, 0] == 0)
    loss = fit.history["loss"][0]
    assert loss[-1] < 0.5 * loss[0]


def test_chunk_size_divides_the_epochs():
    assert stopping.chunk_size(120) == 12 and stopping.chunk_size(90) == 9
    assert stopping.chunk_size(7) == 1 and stopping.chunk_size(1) == 1
    assert stopping.chunk(120, None) == 12 and stopping.chunk(120, 20) == 10 and stopping.chunk(120, 9) == 4


def test_short_real_training_reaches_stated_accuracy(data_root):
    """bAbI-1k task 1 with the paper's recipe (one run): test error at most 1%."""
    ds = load_babi([1], "en", str(data_root))[0]
    fit = Trainer(MemN2N(MemN2NConfig(vocab_size=len(ds.vocab))), MemN2NRecipe(), ds).fit([0])
    assert fit.errors["test"][0] <= 1.0, fit.errors
    assert fit.errors["valid"][0] <= 2.0


def test_official_position_encoding_fixes_J_to_the_padded_length():
    from memjax.train.protocol import build_configs

    ds = toy_dataset()
    mcfg, tcfg = build_configs("memn2n", ds, False, {}, {})  # the default is the authors' form
    assert mcfg.pe_formula == "official" and mcfg.attend_empty
    assert mcfg.pe_length == max(ds.sentences.shape[1], ds.train.query.shape[1]) + 1
    assert mcfg.dim == 20 and tcfg.epochs == 100
    mcfg, _ = build_configs("memn2n", ds, False, {"pe_formula": "paper", "temporal": False}, {})
    assert mcfg.pe_length is None
    mcfg, tcfg = build_configs("memn2n", ds, True, {"dim": None}, {})
    assert mcfg.dim == 50 and (tcfg.epochs, tcfg.decay_every, tcfg.ls_epochs) == (60, 15, 30)


def test_chunked_prediction_equals_direct_logits():
    ds = toy_dataset()
    model = MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8))
    trainer = Trainer(model, small_config(), ds)
    params = jax.jit(model.init)(jax.random.key(0))  # compiled once, not op by op
    data = jax.tree.map(lambda a: a[0], trainer.data)  # the one dataset
    split = data["train"]  # 30 examples: 4 full chunks of 7 and a padded one
    direct = jnp.argmax(jax.jit(model.logits)(params, jnp.asarray(ds.sentences),
                                              {"story": jnp.asarray(ds.train.story), "query": jnp.asarray(ds.train.query)})[0], -1)
    np.testing.assert_array_equal(evaluate.answers(model, trainer.config, params, data, split, chunk=7), direct)


def test_tasks_trained_together_equal_tasks_trained_alone():
    """Padding vocabularies, memories and sizes to train several datasets as one program changes nothing."""
    a, b = toy_dataset(seed=0), toy_dataset(n_stories=48, seed=1)
    b.vocab.words.append("zebra")  # a larger vocabulary than a's
    models = [MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8)) for ds in (a, b)]
    together = Trainer(models, small_config(), [a, b]).fit([0, 1])
    for i, ds in enumerate((a, b)):
        alone = Trainer(models[i], small_config(), ds).fit([0, 1])
        np.testing.assert_allclose(together[i].history["loss"], alone.history["loss"], rtol=2e-4)
        for split in ("train", "valid", "test"):
            np.testing.assert_array_equal(together[i].predictions[split], alone.predictions[split])


def test_datasets_with_different_steps_per_epoch_are_refused():
    a, b = toy_dataset(), toy_dataset(n_stories=80, n_train=70)
    models = [MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8)) for ds in (a, b)]
    with pytest.raises(ValueError, match="steps per epoch"):
        Trainer(models, small_config(), [a, b])


def test_runs_spread_over_devices_equal_one_device():
    devices = jax.local_devices()
    if len(devices) < 2:
        pytest.skip("one device (set MEMJAX_CPU_DEVICES=2)")
    ds = toy_dataset()
    model = MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8))
    spread = Trainer(model, small_config(), ds).fit([0, 1])
    one = Trainer(model, small_config(), ds, devices=devices[:1]).fit([0, 1])
    np.testing.assert_allclose(spread.history["loss"], one.history["loss"], rtol=1e-5)
    np.testing.assert_array_equal(spread.predictions["test"], one.predictions["test"])


@pytest.mark.parametrize("devices", [1, 2])
def test_runs_computed_in_groups_equal_runs_computed_at_once(monkeypatch, devices):
    """A device computes its runs a group at a time when their steps stream many bytes (Trainer.group_size):
    one run at a time, or a task's seeds at a time, trains the runs that all at once trains."""
    if len(jax.local_devices()) < devices:
        pytest.skip("one device (set MEMJAX_CPU_DEVICES=2)")
    sets = [toy_dataset(seed=0), toy_dataset(n_stories=48, seed=1), toy_dataset(n_stories=44, seed=2)]
    models = [MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8)) for ds in sets]
    seeds = [0, 1, 2, 3]  # on two devices: two seeds of each task on each

    def fit(group_runs):
        trainer = Trainer(models, small_config(), sets, devices=jax.local_devices()[:devices])
        step = trainer.model.step_bytes(trainer.batch_size, trainer.memory, trainer.config)
        monkeypatch.setattr(placement, "RUN_GROUP_BYTES", step * group_runs)
        per_device = len(sets) * len(seeds) // devices
        assert trainer.group_size(per_device) == min(group_runs, per_device)
        return trainer.fit(seeds)

    at_once = fit(100)
    # a seed at a time; then two seeds: half a task's seeds on one device, a task's seeds on two (a device
    # holds two of each task's seeds)
    for group_runs in (1, 2):
        grouped = fit(group_runs)
        for i in range(len(sets)):
            np.testing.assert_allclose(grouped[i].history["loss"], at_once[i].history["loss"], rtol=1e-5)
            for x, y in zip(jax.tree.leaves(grouped[i].params), jax.tree.leaves(at_once[i].params)):
                np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)
            for split in ("train", "valid", "test"):
                np.testing.assert_array_equal(grouped[i].predictions[split], at_once[i].predictions[split])


def test_overlapped_start_equals_given_initial_states():
    """fit() makes the initial states beside compiling (programs traced from shapes); starting from
    the same states made beforehand (the resume path) trains exactly the same runs."""
    ds = toy_dataset()
    model = MemN2N(MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8))
    trainer = Trainer(model, small_config(), ds)
    fresh = trainer.fit([0, 1])
    given = Trainer(model, small_config(), ds)
    resumed = given.fit([0, 1], resume=(0, given.initial_states([0, 1]), {}))
    for a, b in zip(jax.tree.leaves(fresh.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(fresh.history["loss"], resumed.history["loss"])
    np.testing.assert_array_equal(fresh.predictions["test"], resumed.predictions["test"])


def test_epoch_batches_gathered_at_once_train_as_gathered_per_step():
    """MemN2N's epoch batches are gathered once an epoch (``epoch_batches``); a model without it gathers
    each step's rows in the step. The rows, and so the runs, are the same."""
    class PerStep(MemN2N):
        traits = dataclasses.replace(MemN2N.traits, epoch_batches=False)

    ds = toy_dataset()
    cfg = MemN2NConfig(vocab_size=len(ds.vocab), memory_size=6, dim=8)
    assert MemN2N.traits.epoch_batches and not PerStep.traits.epoch_batches
    at_once, per_step = (Trainer(m(cfg), small_config(), ds).fit([0, 1]) for m in (MemN2N, PerStep))
    for a, b in zip(jax.tree.leaves(at_once.params), jax.tree.leaves(per_step.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(at_once.history["loss"], per_step.history["loss"], rtol=1e-6)
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(at_once.predictions[split], per_step.predictions[split])


def test_compiler_options_follow_the_environment(monkeypatch):
    monkeypatch.delenv("MEMJAX_XLA_OPT_LEVEL", raising=False)
    assert engine.compiler_options("cpu") == {"xla_backend_optimization_level": 1}
    assert engine.compiler_options("gpu") == {}  # accelerators: XLA's own choice
    monkeypatch.setenv("MEMJAX_XLA_OPT_LEVEL", "default")
    assert engine.compiler_options("cpu") == {}
    monkeypatch.setenv("MEMJAX_XLA_OPT_LEVEL", "3")
    assert engine.compiler_options("cpu") == {"xla_backend_optimization_level": 3}
    monkeypatch.setenv("MEMJAX_XLA_OPT_LEVEL", "fast")
    with pytest.raises(ValueError, match="MEMJAX_XLA_OPT_LEVEL='fast'"):
        engine.compiler_options("cpu")
    # a model's choice of XLA's older CPU fusion emitters, and the variable that overrides it
    monkeypatch.delenv("MEMJAX_XLA_OPT_LEVEL")
    legacy = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}
    assert engine.compiler_options("cpu", legacy_emitters=True) == legacy
    assert engine.compiler_options("gpu", legacy_emitters=True) == {}
    monkeypatch.setenv("MEMJAX_XLA_FUSION_EMITTERS", "new")
    assert engine.compiler_options("cpu", legacy_emitters=True) == {"xla_backend_optimization_level": 1}
    monkeypatch.setenv("MEMJAX_XLA_FUSION_EMITTERS", "legacy")
    assert engine.compiler_options("cpu") == legacy
    monkeypatch.setenv("MEMJAX_XLA_FUSION_EMITTERS", "old")
    with pytest.raises(ValueError, match="MEMJAX_XLA_FUSION_EMITTERS='old'"):
        engine.compiler_options("cpu")


def test_recipes_are_named_configs_and_the_train_config_knows_no_family():
    from memjax.train import recipes
    from memjax.train.config import TrainConfig

    generic = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not generic & {"linear_start", "ls_epochs", "ls_lr", "random_noise", "noise"}
    assert TrainConfig().decay_every is None and TrainConfig().warmup_epochs == 0
    constant = step_decay_schedule(0.01, steps_per_epoch=10, decay_every=None)
    assert float(constant(0)) == float(constant(10_000)) == 0.01
    assert recipes.recipe_for("memn2n") == (MemN2NRecipe(), {})
    assert recipes.recipe_for("memn2n", joint=True) == (MemN2NRecipe(epochs=60, decay_every=15, ls_epochs=30), {"dim": 50})
    assert MemN2NRecipe().total_epochs == 120 and MemN2NRecipe(linear_start=False).total_epochs == 100
    assert recipes.recipe_for("dmn+")[0] == recipes.DMN_PLUS_10K and recipes.DMN_1K.batch_size == 32
    assert recipes.recipe_for("dmn", joint=True)[0] == recipes.DMN_1K  # no joint recipe of its own
    with pytest.raises(ValueError, match=r"--model dmn has no training option linear_start \(--ls\)"):
        recipes.with_overrides(recipes.DMN_1K, "dmn", {"linear_start": True, "epochs": None})
    assert recipes.with_overrides(recipes.DMN_1K, "dmn", {"epochs": 5, "lr": None}).epochs == 5


def test_older_records_read_as_the_same_recipe():
    """results.json keeps recording linear_start and random_noise for every family, and a record written before
    the recipes were split by family (MemN2N's settings switched off with sentinels) reads as the same recipe."""
    from memjax.train import recipes

    old_dmn = {"epochs": 256, "batch_size": 32, "lr": 0.001, "decay_every": 1_000_000, "decay": 0.5, "max_grad_norm": None,
               "linear_start": False, "ls_epochs": 20, "ls_lr": 0.005, "random_noise": False, "noise": 0.1, "loss": "sum",
               "optimizer": "adam", "weight_decay": 0.001, "dropout": 0.1, "patience": 20, "buckets": 0}
    assert recipes.from_record("dmn", old_dmn) == recipes.DMN_1K
    record = recipes.DMN_1K.record()
    assert record["linear_start"] is False and record["random_noise"] is False and record["decay_every"] is None
    assert recipes.from_record("dmn", record) == recipes.DMN_1K
    assert recipes.from_record("memn2n", MemN2NRecipe(ls_epochs=3).record()) == MemN2NRecipe(ls_epochs=3)
