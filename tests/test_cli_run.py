"""tests/cli_run.py: a command run in the test process sees what a new process would."""
import jax

from cli_run import memjax


def test_a_command_run_here_ignores_the_calling_tests_64_bit_mode(data_root, tmp_path):
    """``jax.enable_x64(True)`` around a test (test_dmn.py's fixture) is the calling thread's; a new process
    would train in float32, and the DMN+ training's scan refuses a float64 carry against float32 weights."""
    with jax.enable_x64(True):
        r = memjax(["train", "--model", "dmn+", "--tasks", "1", "--epochs", "1", "--dim", "8",
                    "--out", str(tmp_path / "run")], data=data_root)
        assert jax.config.jax_enable_x64  # the caller's context is left as it was
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "results.json").is_file()
