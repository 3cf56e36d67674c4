import os
import shutil
import tempfile
from pathlib import Path

import pytest

import memjax

# the tests run as the command line does: one JAX device per CPU core (importing memjax changes nothing)
memjax.configure_xla()

try:  # the fuzz tests (test_fuzz.py, test_serve_fuzz.py): 100 examples each in the default run,
    # 10,000 each with MEMJAX_HYPOTHESIS_PROFILE=long
    from hypothesis import HealthCheck, settings
except ImportError:  # a dev dependency: the fuzz tests skip without it
    settings = None
if settings is not None:
    # no deadline and no too_slow check: an example may compile a JAX program (ask's, the server's model),
    # and a loaded 2-core machine can take seconds over the first draws; print_blob: a failure's reproduction line
    fuzz = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "print_blob": True}
    settings.register_profile("memjax", max_examples=100, **fuzz)
    settings.register_profile("long", max_examples=10_000, **fuzz)
    settings.load_profile(os.environ.get("MEMJAX_HYPOTHESIS_PROFILE", "memjax"))


def pytest_configure(config):
    """One JAX compilation cache per test run (MEMJAX_CACHE, a new temporary folder; removed at the end),
    shared by the xdist workers, which inherit it, and by the commands the tests start, so that a program
    that several tests compile (the toy trainings, a task-1 run) is compiled once. The user's own cache is
    left alone. A program read from the cache is the one XLA would compile (runtime.enable_compilation_cache)."""
    if not hasattr(config, "workerinput"):  # the controller (or the only process, with -n 0) makes the folder
        os.environ["MEMJAX_CACHE"] = tempfile.mkdtemp(prefix="memjax-test-xla-")
        config._memjax_cache = os.environ["MEMJAX_CACHE"]
    if os.environ.get("MEMJAX_CACHE"):
        memjax.enable_compilation_cache(os.environ["MEMJAX_CACHE"])
    else:  # a worker started elsewhere, without it: no cache, and the user's left alone by the commands
        os.environ["MEMJAX_CACHE"] = "off"


def pytest_unconfigure(config):
    if getattr(config, "_memjax_cache", None):
        shutil.rmtree(config._memjax_cache, ignore_errors=True)


REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "babi" / "tasks_1-20_v1-2"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The bAbI folder: $MEMJAX_DATA (which must then exist: CI sets it), else ../shared beside the repo,
    else memjax's data home.

    Without any of them, the tests that read the real files are skipped, so that the rest of the suite
    still runs on a machine without the data.
    """
    value = os.environ.get("MEMJAX_DATA")
    if value:
        if not (Path(value) / "en").is_dir():
            pytest.fail(f"MEMJAX_DATA={value} is not a bAbI tasks_1-20_v1-2 folder")
        return Path(value)
    if (DEFAULT_DATA / "en").is_dir():
        return DEFAULT_DATA
    from memjax.data.download import is_release, release_dir

    if is_release(release_dir()):  # what `memjax train` downloaded on first use
        return release_dir()
    pytest.skip("bAbI data not found: set MEMJAX_DATA to a tasks_1-20_v1-2 folder, or run memjax data download")


DEFAULT_DIALOG_DATA = REPO.parent / "shared" / "data" / "dialog-babi" / "dialog-bAbI-tasks"


@pytest.fixture(scope="session")
def dialog_data() -> Path:
    """The dialog bAbI folder (dialog-bAbI-tasks): $MEMJAX_DIALOG_DATA (which must then hold it: CI sets it),
    else ../shared beside the repo, else memjax's data home; without any of them, the tests that read it skip."""
    value = os.environ.get("MEMJAX_DIALOG_DATA")
    if value:
        if not (Path(value) / "dialog-babi-candidates.txt").is_file():
            pytest.fail(f"MEMJAX_DIALOG_DATA={value} is not a dialog bAbI dialog-bAbI-tasks folder")
        return Path(value)
    if (DEFAULT_DIALOG_DATA / "dialog-babi-candidates.txt").is_file():
        return DEFAULT_DIALOG_DATA
    from memjax.data.download import dialog_dir, is_dialog_release

    if is_dialog_release(dialog_dir()):  # what memjax data download --dataset dialog-babi installed
        return dialog_dir()
    pytest.skip("dialog bAbI not found: set MEMJAX_DIALOG_DATA to a dialog-bAbI-tasks folder, "
                "or run memjax data download --dataset dialog-babi")


@pytest.fixture(scope="session")
def small_dialog_run(tmp_path_factory) -> Path:
    """memn2n-dialog trained on the small release of dialog_samples (every dialog right, the OOV one too, after
    60 epochs: about 10 s), in ``FOLDER/run``, the release in ``FOLDER/release``; shared by the chat and chat
    server tests, which must not change it (servers may write their logs beside it)."""
    from cli_run import memjax
    from dialog_samples import write_release

    folder = tmp_path_factory.mktemp("small-dialog")
    release = write_release(folder / "release")
    r = memjax(["train", "--set", "dialog", "--tasks", "1", "--data", str(release), "--epochs", "60", "--dim", "16",
                "--batch-size", "8", "--out", str(folder / "run"), "--quiet"])
    assert r.returncode == 0, r.stderr
    return folder


@pytest.fixture(scope="session")
def task1_run(data_root, tmp_path_factory) -> Path:
    """One run of MemN2N's default recipe on bAbI-1k task 1, saved with --out (about 8 s), shared by the
    tests that read a trained run (checkpoints, ask, serve, plot): they must not change it."""
    from test_cli import run

    out = tmp_path_factory.mktemp("task1") / "run"
    r = run(["train", "--tasks", "1", "--seeds", "1", "--quiet", "--out", str(out)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    return out
