"""The web application: a JSON API over an :class:`~memjax.infer.Answerer`, and the page that uses it.

Routes:
    ``GET /health``: the kind of server (``"qa"``), the model's label, tasks and memory size.
    ``POST /answer``: ``{"story": [...] or "one\\nper\\nline", "question": "..."}`` -> ``Answer.to_dict()``.
    ``GET /api/tasks``: the bAbI tasks the model answers, and whether example stories are available.
    ``GET /api/stories?task=N&limit=K``: the task's first test stories with their questions and answers.
    ``GET /``: the page (plain HTML, its script and style sheet under ``/static/``).

A dialog model is served by :func:`create_chat_app` instead: ``POST /chat``, ``GET /health`` (kind
``"dialog"``) and a chat page; each kind of server answers the other's route with a 404 naming its own.

Every error is a JSON object ``{"error": message}`` (with ``"field"`` when one field of the request
is at fault). A handler that fails unexpectedly answers 500 and logs the traceback; the server goes on.

Defences against other sites' pages, which can make a visitor's browser send requests to a server on
localhost: ``POST`` takes ``Content-Type: application/json`` only (415 otherwise; a cross-site page
cannot send that type without the browser asking first, and this server allows no cross-site
requests); with ``allowed_hosts``, a Host header naming another host is refused (400: DNS
rebinding); every response carries :data:`SECURITY_HEADERS` (no MIME sniffing, no framing, no
referrer, a Content-Security-Policy; the page's own is :data:`PAGE_CSP`).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memjax.chat import SPEAKERS
from memjax.data.babi import TASK_NAMES, DataError
from memjax.infer import LimitError, Limits
from memjax.serve import chat_page, page
from memjax.serve.stories import example_stories

if TYPE_CHECKING:
    from collections.abc import Collection

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from memjax.chat import Chatbot
    from memjax.infer import Answerer

log = logging.getLogger("memjax.serve")

MAX_BODY = 64 * 1024
MAX_STATEMENTS = 1000
STORIES_DEFAULT, STORIES_MAX = 50, 200
# the page loads its script, style sheet and JSON from this server only, and may not be framed
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# on every response (a response's own header of the same name wins: the page's CSP)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
_PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP}


class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` with a one-line ``message`` for the client."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def error_response(status: int, message: str, field: str | None = None) -> JSONResponse:
    """The JSON body of every error: ``{"error": message}``, plus ``"field"`` when one is at fault."""
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(endpoint: Endpoint) -> Endpoint:
    """Turns :class:`RequestError` into its 4xx answer, and any other exception into a logged 500."""

    @functools.wraps(endpoint)
    async def handle(request: Request) -> Response:
        try:
            return await endpoint(request)
        except RequestError as e:
            return error_response(e.status, e.message, e.field)
        except ClientDisconnect:
            return error_response(400, "the client closed the connection before the end of the body")
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response(500, "internal error: the server could not answer this request (see its log)")

    return handle


def require_json(request: Request) -> None:
    """415 unless the request says its body is JSON (``application/json``, parameters such as a charset allowed).

    Browsers send other sites' forms and plain ``fetch`` calls as ``text/plain``, form or multipart
    bodies without asking the server first; JSON takes a CORS preflight, which this server refuses.
    """
    declared = request.headers.get("content-type")
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        said = f"Content-Type {declared[:60]!r}" if declared else "no Content-Type"
        raise RequestError(415, f"the body must be JSON sent as Content-Type: application/json, not {said}")


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 as soon as it is known to exceed ``limit`` bytes.

    The declared Content-Length is checked first, then the bytes actually received, so that a
    chunked body or a wrong Content-Length cannot get past the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        size = whole_number(declared)
        if size is None:
            raise RequestError(400, f"bad Content-Length header: {declared[:40]!r}")
        if size > limit:
            raise RequestError(413, f"the body is {size} bytes: at most {limit} are accepted")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"the body exceeds {limit} bytes")
    return bytes(body)


def parse_json_object(body: bytes) -> dict:
    """The body as a JSON object; 400 for malformed JSON, 422 for JSON that is not an object."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(400, f"malformed JSON: {str(e)[:200]}") from None
    if not isinstance(value, dict):
        raise RequestError(422, f"the body must be a JSON object, not {type(value).__name__}")
    return value


def story_statements(value: Any, max_statements: int) -> list[str]:
    """The story field as statements: a list of strings, or one string with one statement per line.

    In a string, blank lines are dropped; a list is kept as it is (the answer's indices refer to it).
    """
    if isinstance(value, str):
        statements = [line.strip() for line in unicode_text(value, "story").splitlines() if line.strip()]
    elif isinstance(value, list):
        for i, s in enumerate(value):
            if not isinstance(s, str):
                raise RequestError(422, f"story[{i}] must be a string, not {_json_type(s)}", "story")
            unicode_text(s, "story", f"story[{i}]")
        statements = list(value)
    else:
        raise RequestError(422, "story must be a list of statements or a string with one statement per line, "
                                f"not {_json_type(value)}", "story")
    if len(statements) > max_statements:
        raise RequestError(413, f"the story has {len(statements)} statements: at most {max_statements} are accepted",
                           "story")
    return statements


def question_field(value: Any) -> str:
    """The question field: a string."""
    if not isinstance(value, str):
        raise RequestError(422, f"question must be a string, not {_json_type(value)}", "question")
    return unicode_text(value, "question")


def unicode_text(text: str, field: str, where: str | None = None) -> str:
    """``text``, or 400 naming ``field`` when it cannot be written as UTF-8.

    JSON's ``\\ud800`` escapes decode to lone surrogates, which no reply could echo back (the answer
    repeats statements and unknown words), so they are refused here rather than failing as a 500.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RequestError(400, f"{where or field} is not valid Unicode text: a lone surrogate "
                                f"{text[e.start]!r} at character {e.start}", field) from None
    return text


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def required(fields: dict, name: str) -> Any:
    """``fields[name]``, or 422 naming the missing field."""
    if name not in fields:
        raise RequestError(422, f"missing field: {name}", name)
    return fields[name]


def int_parameter(request: Request, name: str, default: int | None, low: int, high: int) -> int:
    """A query parameter as an integer in ``[low, high]``; 400 when it is missing or out of range."""
    text = request.query_params.get(name)
    if text is None or text == "":
        if default is None:
            raise RequestError(400, f"missing query parameter: {name}", name)
        return default
    value = whole_number(text)
    if value is None or not low <= value <= high:
        raise RequestError(400, f"{name} must be a whole number from {low} to {high}, got {text[:20]!r}", name)
    return value


def whole_number(text: str) -> int | None:
    """``text`` as a non-negative integer written in ASCII digits (at most 18 of them), else None."""
    text = text.strip()
    if not text or len(text) > 18 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def create_app(answerer: Answerer, data_root: str | Path | None = None, set_name: str = "en", max_body: int = MAX_BODY,
               max_statements: int = MAX_STATEMENTS, allowed_hosts: Collection[str] | None = None) -> Starlette:
    """The Starlette application serving ``answerer``.

    Args:
        answerer: a loaded :class:`~memjax.infer.Answerer` (or anything with ``answer``, ``label``,
            ``tasks`` and ``memory_size``).
        data_root: the bAbI ``tasks_1-20_v1-2`` folder for the example stories; None to offer none.
        set_name: the data set subfolder the stories come from (``en``, ``en-10k``, ...).
        max_body: the largest request body accepted, in bytes (413 above).
        max_statements: the most statements a story may have (413 above).
        allowed_hosts: the host names (or addresses) a request's Host header may name, whatever its
            port; any other host is refused with 400. None, or a ``"*"`` among them, accepts any host
            (``memjax serve`` always passes its list: see :func:`memjax.serve.allowed_hosts`).

    Raises:
        ValueError: an entry of ``allowed_hosts`` is not a host name or address.
    """
    hosts = served_hosts(allowed_hosts)
    root = Path(data_root) if data_root is not None else None
    tasks = sorted(int(t) for t in answerer.tasks) or sorted(TASK_NAMES)
    cache: dict[tuple[int, int], list[dict]] = {}

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "kind": "qa", "model": answerer.label, "tasks": list(answerer.tasks),
                             "memory_size": int(answerer.memory_size)})

    async def answer(request: Request) -> Response:
        require_json(request)
        fields = parse_json_object(await read_body(request, max_body))
        story = story_statements(required(fields, "story"), max_statements)
        question = question_field(required(fields, "question"))
        try:
            result = await run_in_threadpool(answerer.answer, story, question)
        except LimitError as e:  # the story or the question over the server's Answerer's limits (memjax.infer.Limits)
            raise RequestError(413, str(e), e.field) from None
        except ValueError as e:
            raise RequestError(422, str(e), "question") from None
        return JSONResponse(result.to_dict())

    async def task_list(request: Request) -> Response:
        return JSONResponse({"model": answerer.label, "set": set_name, "stories": root is not None,
                             "tasks": [{"task": t, "name": TASK_NAMES.get(t, "")} for t in tasks]})

    async def stories(request: Request) -> Response:
        task = int_parameter(request, "task", None, 1, max(TASK_NAMES))
        if task not in tasks:
            raise RequestError(400, f"this model answers task(s) {', '.join(map(str, tasks))}, not {task}", "task")
        limit = int_parameter(request, "limit", STORIES_DEFAULT, 1, STORIES_MAX)
        if root is None:
            raise RequestError(404, "no bAbI data folder: start memjax serve with --data DIR to get example stories")
        if (task, limit) not in cache:
            try:
                cache[task, limit] = await run_in_threadpool(example_stories, root, set_name, task, limit)
            except DataError as e:
                raise RequestError(404, str(e)) from None
        return JSONResponse({"task": task, "set": set_name, "stories": cache[task, limit]})

    routes = [
        Route("/", _static(page.HTML, "text/html; charset=utf-8")),
        Route("/static/page.js", _static(page.SCRIPT, "text/javascript; charset=utf-8")),
        Route("/static/page.css", _static(page.STYLE, "text/css; charset=utf-8")),
        Route("/health", guarded(health)),
        Route("/answer", guarded(answer), methods=["POST"]),
        Route("/api/tasks", guarded(task_list)),
        Route("/api/stories", guarded(stories)),
        Route("/chat", _elsewhere("this server answers questions about stories (POST /answer); /chat is served "
                                  "for dialog models (memjax train --set dialog)"), methods=["GET", "POST"]),
    ]
    return _application(routes, hosts)


def _application(routes: list[Route], hosts: frozenset[str] | None) -> Starlette:
    return Starlette(routes=routes, middleware=[Middleware(Guard, allowed=hosts)],
                     exception_handlers={HTTPException: _http_error, Exception: _server_error})


def _elsewhere(message: str) -> Endpoint:
    """A route of the other kind of server: 404 saying which route this one serves."""

    async def refuse(request: Request) -> Response:
        return error_response(404, message)

    return refuse


def history_entries(value: Any, limits: Limits) -> list[tuple[str, str]]:
    """The ``history`` field of ``POST /chat``: ``[{"speaker": "user"|"bot"|"kb", "text": "..."}]``, oldest
    first, as :attr:`memjax.chat.Chatbot.history`'s (speaker, text) pairs.

    Each entry is held to ``limits`` as a turn is (characters and words: 413), the list to ``max_story``
    entries (413); a speaker not in :data:`memjax.chat.SPEAKERS` or a lone surrogate is 400, a wrong type 422.
    """
    if not isinstance(value, list):
        raise RequestError(422, f"history must be a list of {{speaker, text}} objects, not {_json_type(value)}",
                           "history")
    if len(value) > limits.max_story:
        raise RequestError(413, f"the history has {len(value)} entries: at most {limits.max_story} are accepted",
                           "history")
    entries = []
    for i, entry in enumerate(value):
        where = f"history[{i}]"
        if not isinstance(entry, dict):
            raise RequestError(422, f"{where} must be an object {{speaker, text}}, not {_json_type(entry)}", "history")
        speaker, text = entry.get("speaker"), entry.get("text")
        if not isinstance(speaker, str) or speaker not in SPEAKERS:
            said = repr(speaker[:40]) if isinstance(speaker, str) else _json_type(speaker)
            raise RequestError(400, f"{where}.speaker must be one of {', '.join(SPEAKERS)}, not {said}", "history")
        if not isinstance(text, str):
            raise RequestError(422, f"{where}.text must be a string, not {_json_type(text)}", "history")
        unicode_text(text, "history", f"{where}.text")
        if len(text) > limits.max_line:
            raise RequestError(413, f"{where}.text has {len(text)} characters: at most {limits.max_line} are accepted",
                               "history")
        n = len(text.split())
        if n > limits.max_statement_words:
            raise RequestError(413, f"{where}.text has {n} words: at most {limits.max_statement_words} are accepted",
                               "history")
        entries.append((SPEAKERS[speaker], text))
    return entries


def create_chat_app(bot: Chatbot, max_body: int = MAX_BODY, allowed_hosts: Collection[str] | None = None) -> Starlette:
    """The Starlette application conversing with a dialog model (``memjax serve`` of a ``--set dialog`` run).

    Routes: ``POST /chat`` (``{"history": [{"speaker", "text"}...], "turn": "..."}`` -> ``{"replies":
    [Reply.to_dict()...], "history": [...]}``: stateless, the client sends the conversation so far and
    gets it back with the turn, the bot's replies and the knowledge base's result lines added),
    ``GET /health`` and ``GET /`` (the chat page). ``POST /answer`` is a 404 naming ``/chat``.

    Args:
        bot: a loaded :class:`~memjax.chat.Chatbot` (its ``kb`` set for api_call); each request answers with
            its own copy (:meth:`~memjax.chat.Chatbot.in_conversation`), so the bot's history is never touched.
        max_body: the largest request body accepted, in bytes (413 above).
        allowed_hosts: as :func:`create_app`'s.

    Raises:
        ValueError: an entry of ``allowed_hosts`` is not a host name or address.
    """
    hosts = served_hosts(allowed_hosts)
    names = {token: name for name, token in SPEAKERS.items()}

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "kind": "dialog", "model": bot.label,
                             "memory_size": int(bot.cfg.memory_size), "candidates": len(bot.cfg.candidates),
                             "knowledge_base": bot.kb is not None})

    async def chat(request: Request) -> Response:
        require_json(request)
        fields = parse_json_object(await read_body(request, max_body))
        history = history_entries(fields.get("history", []), bot.limits)
        turn = required(fields, "turn")
        if not isinstance(turn, str):
            raise RequestError(422, f"turn must be a string, not {_json_type(turn)}", "turn")
        unicode_text(turn, "turn")
        talking = bot.in_conversation(history)
        try:
            replies = await run_in_threadpool(talking.say, turn)
        except LimitError as e:  # over the bot's Limits
            raise RequestError(413, str(e), "turn") from None
        except ValueError as e:  # no words
            raise RequestError(400, str(e), "turn") from None
        return JSONResponse({"replies": [r.to_dict() for r in replies],
                             "history": [{"speaker": names[who], "text": text} for who, text in talking.history]})

    routes = [
        Route("/", _static(chat_page.HTML, "text/html; charset=utf-8")),
        Route("/static/chat.js", _static(chat_page.SCRIPT, "text/javascript; charset=utf-8")),
        Route("/static/page.css", _static(chat_page.STYLE, "text/css; charset=utf-8")),
        Route("/health", guarded(health)),
        Route("/chat", guarded(chat), methods=["POST"]),
        Route("/answer", _elsewhere("this server talks with a dialog model: POST /chat with {\"history\": [...], "
                                    "\"turn\": \"...\"}, not /answer"), methods=["GET", "POST"]),
    ]
    return _application(routes, hosts)


# a Host header: a bracketed IPv6 address or a name, then an optional port; or a bare IPv6 address
_HOST = re.compile(r"\[([0-9a-f:.]+)\](?::[0-9]{1,5})?|([0-9a-f.]*:[0-9a-f.]*:[0-9a-f:.]*)"
                   r"|([^:\[\]@/\\\s?#]*)(?::[0-9]{1,5})?")


def host_name(header: str) -> str | None:
    """The host a Host header names, lower case, without its port or a final dot (``"[::1]:8000"`` ->
    ``"::1"``, ``"LocalHost.:80"`` -> ``"localhost"``); None for text that is not a host and an optional port."""
    match = _HOST.fullmatch(header.strip().lower())
    if match is None:
        return None
    return next(g for g in match.groups() if g is not None).rstrip(".")


def served_hosts(allowed_hosts: Collection[str] | None) -> frozenset[str] | None:
    """``allowed_hosts`` as :func:`host_name` writes them; None for any host (None, or ``"*"`` among them).

    Raises:
        ValueError: an entry is not a host name or address (with an optional port).
    """
    if allowed_hosts is None:
        return None
    names = set()
    for entry in allowed_hosts:
        name = host_name(entry)
        if name is None:
            raise ValueError(f"not a host name: {entry[:100]!r}")
        names.add(name)
    return None if "*" in names else frozenset(names)


class Guard:
    """ASGI middleware: refuses a request whose Host is not served, and adds :data:`SECURITY_HEADERS` to every
    response (those a response does not set itself).

    The Host check stops DNS rebinding: a page on ``evil.example`` whose name is made to resolve to
    127.0.0.1 reaches this server with ``Host: evil.example``.
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None = None):
        self.app, self.allowed = app, allowed  # host names as host_name gives them; None: any host

    def host_problem(self, scope: Scope) -> str | None:
        """Why the request's Host header is refused (one line), or None."""
        if self.allowed is None:
            return None
        hosts = [value.decode("latin-1") for key, value in scope["headers"] if key.lower() == b"host"]
        if len(hosts) != 1:
            return f"a request must have one Host header, not {len(hosts)}"
        if host_name(hosts[0]) not in self.allowed:  # None (not a host) included
            return (f"this server does not serve the host {hosts[0][:100]!r} (memjax serve --allowed-host NAME "
                    "adds a name)")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)  # edits the message's own list
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        problem = self.host_problem(scope)
        if problem:
            await error_response(400, problem, "host")(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)


def _static(text: str, media_type: str) -> Endpoint:
    content = text.encode("utf-8")

    async def send(request: Request) -> Response:
        return Response(content, media_type=media_type, headers=_PAGE_HEADERS)

    return send


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404 for an unknown path, 405 for a wrong method) as JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    """The last resort, outside the handlers (they catch their own): a JSON 500 (sent from outside
    :class:`Guard`, so it carries the security headers itself)."""
    response = error_response(500, "internal error: the server could not answer this request (see its log)")
    response.headers.update(SECURITY_HEADERS)
    return response
