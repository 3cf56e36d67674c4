"""The web application: a JSON API over an :class:`~memjax.infer.Answerer`, and the page that uses it.

Routes:
    ``GET /health``: the model's label, tasks and memory size.
    ``POST /answer``: ``{"story": [...] or "one\\nper\\nline", "question": "..."}`` -> ``Answer.to_dict()``.
    ``GET /api/tasks``: the bAbI tasks the model answers, and whether example stories are available.
    ``GET /api/stories?task=N&limit=K``: the task's first test stories with their questions and answers.
    ``GET /``: the page (plain HTML, its script and style sheet under ``/static/``).

Every error is a JSON object ``{"error": message}`` (with ``"field"`` when one field of the request
is at fault). A handler that fails unexpectedly answers 500 and logs the traceback; the server goes on.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memjax.data.babi import TASK_NAMES, DataError
from memjax.serve import page
from memjax.serve.stories import example_stories

if TYPE_CHECKING:
    from memjax.infer import Answerer

log = logging.getLogger("memjax.serve")

MAX_BODY = 64 * 1024
MAX_STATEMENTS = 1000
STORIES_DEFAULT, STORIES_MAX = 50, 200
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


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
               max_statements: int = MAX_STATEMENTS) -> Starlette:
    """The Starlette application serving ``answerer``.

    Args:
        answerer: a loaded :class:`~memjax.infer.Answerer` (or anything with ``answer``, ``label``,
            ``tasks`` and ``memory_size``).
        data_root: the bAbI ``tasks_1-20_v1-2`` folder for the example stories; None to offer none.
        set_name: the data set subfolder the stories come from (``en``, ``en-10k``, ...).
        max_body: the largest request body accepted, in bytes (413 above).
        max_statements: the most statements a story may have (413 above).
    """
    root = Path(data_root) if data_root is not None else None
    tasks = sorted(int(t) for t in answerer.tasks) or sorted(TASK_NAMES)
    cache: dict[tuple[int, int], list[dict]] = {}

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": answerer.label, "tasks": list(answerer.tasks),
                             "memory_size": int(answerer.memory_size)})

    async def answer(request: Request) -> Response:
        fields = parse_json_object(await read_body(request, max_body))
        story = story_statements(required(fields, "story"), max_statements)
        question = question_field(required(fields, "question"))
        try:
            result = await run_in_threadpool(answerer.answer, story, question)
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
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _server_error})


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
    """The last resort, outside the handlers (they catch their own): a JSON 500."""
    return error_response(500, "internal error: the server could not answer this request (see its log)")
