"""``memjax serve``: a trained model behind a JSON API and a web page with an attention heat map.

A dialog model (``memjax train --set dialog``) is served as a conversation instead: ``POST /chat`` and a
chat page (:func:`memjax.serve.app.create_chat_app`).

Start it with ``memjax serve --checkpoint runs/task1``, or build the application in Python::

    from starlette.testclient import TestClient
    from memjax.infer import Answerer
    from memjax.serve import create_app

    client = TestClient(create_app(Answerer.load("runs/task1")))
    client.post("/answer", json={"story": ["Mary went to the office."], "question": "Where is Mary?"}).json()
    # {"answer": "office", "probability": 0.99, "unknown_words": [], "top": [...], "hops": [[...], ...]}

The application itself is in :mod:`memjax.serve.app` (it needs Starlette: ``pip install 'memjax[serve]'``);
this module only loads the model, finds the example stories and runs uvicorn.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from memjax.data.babi import ENV_VAR, data_root
from memjax.runtime import stdout_to_devnull

__all__ = ["allowed_hosts", "create_app", "create_chat_app", "serve", "story_source"]

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_EVERY_ADDRESS = ("", "0.0.0.0", "::")


def __getattr__(name: str):
    if name in ("create_app", "create_chat_app"):  # imported on use, so that ``memjax serve`` can say when
        from memjax.serve import app  # Starlette is missing

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def story_source(checkpoint: str | Path, flag: str | None = None) -> tuple[Path | None, str]:
    """Where the page's example stories come from: ``(bAbI folder or None, data set name)``.

    The folder is ``flag`` (``--data``; it must exist), else the training run's own data folder
    (``run.json``), else ``$MEMJAX_DATA``, else the data home's copy if there is one (the page's examples
    download nothing); None when none of them is a folder. The set is the run's.

    Raises:
        DataError: when ``flag`` is given and is not a folder.
    """
    run = _run_record(Path(checkpoint))
    set_name = run.get("set") if isinstance(run.get("set"), str) else "en"
    if flag:
        return data_root(flag), set_name
    for candidate in (run.get("data"), os.environ.get(ENV_VAR)):
        if isinstance(candidate, str) and candidate and Path(candidate).expanduser().is_dir():
            return Path(candidate).expanduser(), set_name
    from memjax.data.download import is_release, release_dir

    if is_release(release_dir()):
        return release_dir(), set_name
    return None, set_name


def _run_record(checkpoint: Path) -> dict:
    try:
        record = json.loads((checkpoint / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _missing_dependencies() -> list[str]:
    return [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]


def url(host: str, port: int) -> str:
    """The address to print: ``http://127.0.0.1:8000/`` (an IPv6 host in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def allowed_hosts(host: str, extra: Sequence[str] = ()) -> list[str]:
    """The hosts a request's Host header may name on a server listening on ``host`` (whatever the port).

    The localhost forms, ``host`` itself and ``extra`` (``--allowed-host``: a reverse proxy's name;
    ``*`` turns the check off). Listening on every address (``0.0.0.0``, ``::``), also the machine's
    name and the addresses it resolves to; other names and addresses must be passed in ``extra``.
    """
    names = [*LOCAL_HOSTS, *extra]
    if host not in _EVERY_ADDRESS:
        names.append(host)
    else:
        machine = socket.gethostname()
        names.append(machine)
        try:
            names += [info[4][0] for info in socket.getaddrinfo(machine, None) if "%" not in str(info[4][0])]
        except OSError:  # the name does not resolve: the addresses must be passed with --allowed-host
            pass
    return list(dict.fromkeys(names))


def unusable_address(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (a one-line message), or None if it can.

    Checked before the model is loaded, so that a busy port fails at once and in one line.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn binds
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except (OSError, UnicodeError) as e:
            return f"cannot listen on {host}:{port}: {getattr(e, 'strerror', None) or e}"
    return None


def serve(args: argparse.Namespace) -> int:
    """Runs ``memjax serve``: loads the model once, then serves it until interrupted: a dialog model
    (:data:`memjax.models.DIALOG_FAMILIES`) as a conversation (``POST /chat``), any other as question
    answering (``POST /answer``).

    Args:
        args: the command line's ``checkpoint``, ``task``, ``host``, ``port``, ``data``, ``kb`` (a dialog
            model's knowledge base, or None: :func:`memjax.chat.default_kb`), ``allowed_host`` (a list, or
            None) and ``request_timeout`` (seconds).

    Returns:
        The exit status.

    Raises:
        CheckpointError: the checkpoint is missing or holds no model for ``--task``.
        DataError: ``--data`` is not a folder; ``--kb`` (or the default knowledge base) is missing or malformed.
    """
    missing = _missing_dependencies()
    if missing:
        print(f"memjax: error: serve needs {' and '.join(missing)}: pip install 'memjax[serve]'", file=sys.stderr)
        return 2
    problem = unusable_address(args.host, args.port)
    if problem:
        print(f"memjax: error: {problem}", file=sys.stderr)
        return 2
    import uvicorn

    from memjax import enable_compilation_cache
    from memjax.chat import Chatbot, default_kb
    from memjax.infer import Answerer, load_models
    from memjax.models import DIALOG_FAMILIES
    from memjax.serve.app import create_app, create_chat_app, served_hosts
    from memjax.serve.protocol import KEEP_ALIVE_TIMEOUT, MAX_HEAD, protocol

    hosts = allowed_hosts(args.host, args.allowed_host or ())
    try:
        served_hosts(hosts)  # a bad --allowed-host fails now, in one line, before the model loads
    except ValueError as e:
        print(f"memjax: error: --allowed-host: {e}", file=sys.stderr)
        return 2

    enable_compilation_cache()
    models = load_models(args.checkpoint)
    if any(m.get("family") in DIALOG_FAMILIES for m in models.values()):  # a conversation instead of /answer
        bot = Chatbot.load(args.checkpoint, args.task, models=models)
        bot.kb = default_kb(bot, getattr(args, "kb", None))
        app = create_chat_app(bot, allowed_hosts=hosts)
        kb = f"{len(bot.kb.facts)} restaurants in its knowledge base" if bot.kb else "no knowledge base"
        loaded = (f"dialog model of task {bot.label} ({len(bot.cfg.candidates)} candidate utterances, memory "
                  f"{bot.cfg.memory_size}) from {args.checkpoint}; {kb}")
    else:
        if getattr(args, "kb", None):
            print(f"memjax: error: --kb: {args.checkpoint} holds no dialog model (the knowledge base is for the "
                  "api_call of dialog models)", file=sys.stderr)
            return 2
        root, set_name = story_source(args.checkpoint, args.data)
        qa = Answerer.load(args.checkpoint, args.task, models=models)
        app = create_app(qa, root, set_name, allowed_hosts=hosts)
        stories = f"example stories from {root / set_name}" if root else \
            f"no bAbI data folder, so no example stories (pass --data DIR, set {ENV_VAR} or run memjax data download)"
        loaded = (f"model {qa.label} (tasks {', '.join(map(str, qa.tasks)) or '?'}, memory {qa.memory_size}) "
                  f"from {args.checkpoint}; {stories}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    _say(f"memjax serve: {loaded}")
    _say(f"memjax serve: open {url(args.host, args.port)} (Ctrl+C stops)")
    with _stop_on_sigterm():
        try:
            # h11 with a deadline per request (slow headers and bodies), whatever uvicorn would pick;
            # no WebSocket upgrades (the app has no WebSocket route)
            uvicorn.run(app, host=args.host, port=args.port, log_level="info", http=protocol(args.request_timeout),
                        ws="none", timeout_keep_alive=KEEP_ALIVE_TIMEOUT, h11_max_incomplete_event_size=MAX_HEAD,
                        log_config=_log_config())
        except (_Stopped, KeyboardInterrupt):
            pass  # uvicorn shut down gracefully, then passed the signal on
    _say("memjax serve: stopped")
    return 0


# A server outlives the reader of its stdout (memjax serve | head -1, a log reader that stops): the lines
# for stdout are then dropped, with no traceback, and the server goes on serving.

def _say(line: str) -> None:
    """Prints ``line`` on stdout; once stdout's reader has gone, nothing (no traceback)."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        stdout_to_devnull()


class _StdoutLog(logging.StreamHandler):
    """uvicorn's access log on stdout: a closed pipe drops the lines instead of printing a
    "--- Logging error ---" traceback for each request."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            stdout_to_devnull()
        else:
            super().handleError(record)


def _log_config() -> dict:
    """uvicorn's own logging configuration, its handlers for stdout made :class:`_StdoutLog`."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for handler in config.get("handlers", {}).values():
        if handler.get("stream") == "ext://sys.stdout":
            handler["class"] = f"{__name__}._StdoutLog"
    return config


class _Stopped(Exception):
    """SIGTERM arrived: the server has stopped on request."""


@contextlib.contextmanager
def _stop_on_sigterm():
    """While serving, SIGTERM ends like Ctrl+C: a graceful shutdown, then exit status 0.

    uvicorn handles the signal itself and re-raises it once it has shut down; this handler turns
    that into :class:`_Stopped` instead of the default abrupt end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
