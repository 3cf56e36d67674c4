"""Run a ``memjax`` command for a test: in this process where that is the same as a new one, else in a new one.

A new process costs about 1.3 s of start-up (Python, JAX and its devices) before the command does anything;
the default test run starts well over a hundred. In this process the command is ``memjax.cli.main`` with what
a new process would have: its own environment (restored afterwards), an empty stdin unless one is given, and
``sys.stdout``, ``sys.stderr`` and file descriptors 1 and 2 pointed at files, so that what the command prints
and warns and what XLA's C++ writes are in the result, as from a pipe (a logging handler made before the
command, holding an older stream, writes there instead), and JAX's 64-bit mode as a new process has it
(a test module may run under ``jax.enable_x64(True)``, which is this thread's alone). The test process
set XLA up as the command line does (conftest: ``memjax.configure_xla``), so the devices are the same.

A new process is used where this process cannot stand in: environment variables other than MEMJAX_DATA
(a variable may be read at import, or be XLA's), and every command with ``MEMJAX_TEST_SUBPROCESS=1`` (as
before). In this process the timeout is not enforced.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback

import jax

MEMJAX = [shutil.which("memjax")] if shutil.which("memjax") else [sys.executable, "-m", "memjax"]


def memjax(args: list[str], stdin: str | None = None, env: dict[str, str] | None = None,
           data: object = ..., timeout: float | None = 600) -> subprocess.CompletedProcess:
    """``memjax ARGS`` with ``stdin`` as its input; ``env``: variables added to this environment; ``data``:
    MEMJAX_DATA for the command (None: unset; ...: as in this process). Returns what ``subprocess.run`` would
    (text stdout and stderr, the exit status)."""
    full = dict(os.environ)
    if data is not ...:
        full.pop("MEMJAX_DATA", None)
        if data:
            full["MEMJAX_DATA"] = str(data)
    full.update(env or {})
    forced = os.environ.get("MEMJAX_TEST_SUBPROCESS", "").strip() not in ("", "0")
    if forced or env:
        return subprocess.run(MEMJAX + list(args), input=stdin, capture_output=True, text=True, env=full,
                              timeout=timeout, stdin=None if stdin is not None else subprocess.DEVNULL)
    return _here(list(args), stdin or "", full)


def _process_x64() -> bool:
    """64-bit mode as the process has it, outside any ``jax.enable_x64`` context of the calling thread: such a
    context is thread-local, so a new thread reads the process's value."""
    seen: list[bool] = []
    reader = threading.Thread(target=lambda: seen.append(bool(jax.config.jax_enable_x64)))
    reader.start()
    reader.join()
    return seen[0]


def _here(args: list[str], stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    from memjax.cli import main

    saved_env = dict(os.environ)
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    before = set(threading.enumerate())
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            os.environ.clear()
            os.environ.update(env)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8")
            streams = (open(1, "w", encoding="utf-8", closefd=False),
                       open(2, "w", encoding="utf-8", closefd=False, errors="backslashreplace"))
            sys.stdout, sys.stderr = streams
            try:
                with jax.enable_x64(_process_x64()):
                    rc = main(args) or 0
            except SystemExit as e:  # argparse's errors and --help
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if e.code is not None and not isinstance(e.code, int):
                    print(e.code, file=sys.stderr)
            except KeyboardInterrupt:
                raise
            except BaseException:  # what a new process would print before exiting with 1
                traceback.print_exc()
                rc = 1
            for thread in set(threading.enumerate()) - before:  # as the command's own exit joins them
                if not thread.daemon:
                    thread.join()
            for stream in streams:
                stream.close()  # flushed into the files; descriptors 1 and 2 stay open
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            os.close(saved_fds[0])
            os.close(saved_fds[1])
            os.environ.clear()
            os.environ.update(saved_env)
        out.seek(0)
        err.seek(0)
        text = [f.read().decode("utf-8", errors="replace") for f in (out, err)]
    return subprocess.CompletedProcess(["memjax", *args], rc, text[0], text[1])
