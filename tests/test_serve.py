"""memjax serve: the JSON API (Starlette's TestClient), a real server over HTTP, and the page in headless Chromium."""

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="memjax serve needs starlette: pip install 'memjax[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (Starlette's TestClient)")

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: E402

from memjax.infer import Answerer  # noqa: E402
from memjax.serve import create_app  # noqa: E402
from test_cli import MEMJAX, run  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

STORY = ["Mary went to the kitchen.", "John moved to the garden.", "Mary travelled to the office."]
QUESTION = "Where is Mary?"
GOOD = {"story": STORY, "question": QUESTION}
JSON = {"content-type": "application/json"}
LIMIT = 64 * 1024
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def trained(task1_run):
    """bAbI-1k task 1, one run of the default recipe, with --out (shared by the session: see conftest)."""
    return task1_run


@pytest.fixture(scope="module")
def answerer(trained) -> Answerer:
    return Answerer.load(trained)


@pytest.fixture(scope="module")
def client(answerer, data_root):
    with TestClient(create_app(answerer, data_root, "en")) as c:
        yield c


def assert_answers_mary(client) -> dict:
    """The good request still gets the right answer (the server survived whatever came before)."""
    r = client.post("/answer", json=GOOD)
    assert r.status_code == 200, r.text
    assert r.json()["answer"] == "office"
    return r.json()


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    for w in words:
        assert w in body["error"], body
    return body


# --- the API, in process ---------------------------------------------------------------------------

def test_health_names_the_model(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "kind": "qa", "model": "1", "tasks": [1], "memory_size": 50}


def test_answer_gives_the_answer_and_the_attention_per_hop(client):
    body = assert_answers_mary(client)
    assert set(body) == {"answer", "probability", "unknown_words", "top", "hops", "attention", "unknown_words_read"}
    assert body["attention"] == "hop"  # MemN2N: one row of weights per hop
    assert 0.5 < body["probability"] <= 1.0 and body["top"][0] == {"word": "office", "probability": body["probability"]}
    assert body["unknown_words"] == []
    assert len(body["hops"]) == 3
    for hop in body["hops"]:
        assert sorted(row["index"] for row in hop) == [0, 1, 2]
        assert hop[0] == {"index": 2, "sentence": "Mary travelled to the office.", "weight": hop[0]["weight"]}
        assert [row["weight"] for row in hop] == sorted((row["weight"] for row in hop), reverse=True)
    as_text = client.post("/answer", json={"story": "\n".join(STORY) + "\n\n", "question": QUESTION})
    assert as_text.status_code == 200 and as_text.json() == body


def test_malformed_json_is_400(client):
    for raw in (b"{", b'{"story": ["Mary went home."], "question": }', b"\xff\xfe", b"", b"[" * 5000):
        assert_error(client.post("/answer", content=raw, headers={"content-type": "application/json"}), 400,
                     "malformed JSON")
        assert_answers_mary(client)


def test_missing_or_wrongly_typed_fields_are_422_naming_the_field(client):
    cases = [({"question": QUESTION}, "story"), ({"story": STORY}, "question"),
             ({"story": [1, 2], "question": QUESTION}, "story"), ({"story": {"a": 1}, "question": QUESTION}, "story"),
             ({"story": STORY, "question": ["where"]}, "question"), ({"story": STORY, "question": "?!"}, "question")]
    for fields, name in cases:
        body = assert_error(client.post("/answer", json=fields), 422, name)
        assert body["field"] == name
        assert_answers_mary(client)
    assert_error(client.post("/answer", json=["not", "an", "object"]), 422, "object")


def post_json_text(client, fields, **headers):
    """POST ``fields`` as JSON with ASCII escapes (``"\\ud800"``), which httpx's ``json=`` cannot send."""
    return client.post("/answer", content=json.dumps(fields).encode("ascii"),
                       headers={"content-type": "application/json", **headers})


def test_text_that_cannot_be_encoded_is_400_naming_the_field(client):
    """A lone surrogate (JSON ``"\\ud800"``) in a statement or the question: a 400 naming the field, where it
    was a 500 (the answer echoes the statements back and could not be encoded)."""
    cases = [({"story": ["Mary went to the \ud800 office."], "question": QUESTION}, "story", "story[0]"),
             ({"story": STORY + ["\udfff"], "question": QUESTION}, "story", "story[3]"),
             ({"story": "Mary went to the office.\n\ud800", "question": QUESTION}, "story", "story "),
             ({"story": STORY, "question": "Where is \udbff Mary?"}, "question", "question ")]
    for fields, name, where in cases:
        body = assert_error(post_json_text(client, fields), 400, where, "surrogate")
        assert body["field"] == name
        assert_answers_mary(client)
    paired = post_json_text(client, {"story": STORY, "question": "Where is \U0001D510 Mary?"})  # a pair: fine
    assert paired.status_code == 200 and paired.json()["unknown_words"] == ["\U0001D510"]


def test_answer_takes_json_only(client):
    """POST /answer of any other type is 415: other sites' pages can make a browser send forms and text/plain
    (or no type) without asking, but JSON only after a CORS preflight, which this server refuses."""
    body = json.dumps(GOOD).encode()
    for headers in ({}, {"content-type": "text/plain"}, {"content-type": "text/plain; charset=utf-8"},
                    {"content-type": "application/x-www-form-urlencoded"},
                    {"content-type": "multipart/form-data; boundary=x"}, {"content-type": "application/jsonp"},
                    {"content-type": "text/json"}):
        assert_error(client.post("/answer", content=body, headers=headers), 415, "application/json")
        assert_answers_mary(client)
    assert_error(client.post("/answer", content=b" " * (4 * LIMIT), headers={"content-type": "text/plain"}), 415)
    assert client.options("/answer", headers={"origin": "https://evil.example",
                                              "access-control-request-method": "POST"}).status_code == 405
    for media_type in ("application/json; charset=utf-8", "Application/JSON", " application/json ;charset=UTF-8"):
        r = client.post("/answer", content=body, headers={"content-type": media_type})
        assert r.status_code == 200 and r.json()["answer"] == "office", (media_type, r.text)


SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


def assert_secured(response) -> None:
    """The response carries the security headers, whatever its route or status."""
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, response.status_code, name)
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), response.request.url


def test_every_response_carries_the_security_headers(client):
    responses = [client.get("/"), client.get("/static/page.js"), client.get("/static/page.css"),
                 client.get("/health"), client.get("/api/tasks"), client.get("/api/stories?task=1&limit=1"),
                 client.get("/api/stories"), client.post("/answer", json=GOOD), client.post("/answer", json={}),
                 client.post("/answer", content=b"{", headers=JSON), client.post("/answer", content=b"{}"),
                 client.post("/answer", content=b" " * (LIMIT + 1), headers=JSON), client.get("/nowhere"),
                 client.get("/answer")]
    for r in responses:
        assert_secured(r)
    assert {r.status_code for r in responses} == {200, 400, 404, 405, 413, 415, 422}
    # JSON may load nothing and run nothing; the page its own script, style sheet and API
    assert client.get("/health").headers["content-security-policy"].startswith("default-src 'none';")
    assert "script-src" not in client.get("/health").headers["content-security-policy"]
    assert "script-src 'self'" in client.get("/").headers["content-security-policy"]


def test_the_host_header_must_be_one_served(answerer):
    """With allowed_hosts (memjax serve always passes them), another host is refused: DNS rebinding makes a page
    of evil.example reach a server on 127.0.0.1 under its own name."""
    local = TestClient(create_app(answerer, allowed_hosts=["localhost", "127.0.0.1", "::1", "Memjax.Example"]),
                       base_url="http://localhost:8000")
    assert_answers_mary(local)
    for host in ("localhost", "LOCALHOST.:8000", "127.0.0.1:8000", "[::1]:8000", "memjax.example",
                 "memjax.example:443"):
        r = local.post("/answer", json=GOOD, headers={"host": host})
        assert r.status_code == 200 and r.json()["answer"] == "office", (host, r.text)
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io:8000", "",
                 "[::2]:8000", "memjax.example.evil", "localhost:8000@evil.example"):
        refused = local.post("/answer", json=GOOD, headers={"host": host})
        assert assert_error(refused, 400, "does not serve the host", "--allowed-host")["field"] == "host"
        assert_secured(refused)
        assert_error(local.get("/", headers={"host": host}), 400, "host")  # the page too
    anyone = TestClient(create_app(answerer, allowed_hosts=["localhost", "*"]))
    assert anyone.post("/answer", json=GOOD, headers={"host": "evil.example"}).status_code == 200


def test_bodies_over_the_limit_are_413_whatever_the_headers_say(client):
    padding = " " * (LIMIT + 1)
    huge = ('{"story": [], "question": "Where is Mary?"' + padding + "}").encode()
    assert_error(client.post("/answer", content=huge, headers=JSON), 413, "bytes")
    assert_answers_mary(client)
    lying = client.post("/answer", content=huge, headers={**JSON, "content-length": "40"})
    assert_error(lying, 413, str(LIMIT))
    assert_answers_mary(client)
    chunked = client.post("/answer", content=iter([huge[:LIMIT // 2], huge[LIMIT // 2:]]), headers=JSON)
    assert_error(chunked, 413, str(LIMIT))
    assert_answers_mary(client)
    assert_error(client.post("/answer", content=b"{}", headers={**JSON, "content-length": "lots"}), 400,
                 "Content-Length")
    assert_answers_mary(client)


def test_stories_with_too_many_statements_are_refused(client, answerer):
    small = TestClient(create_app(answerer, max_statements=5))
    body = assert_error(small.post("/answer", json={"story": STORY * 2, "question": QUESTION}), 413, "at most 5")
    assert body["field"] == "story"
    assert assert_answers_mary(small)["hops"]


def test_bad_requests_log_no_tracebacks_and_failures_are_a_json_500(answerer, caplog):
    class Failing:
        label, tasks, memory_size = answerer.label, answerer.tasks, answerer.memory_size

        def answer(self, story, question):
            if question == "fail":
                raise RuntimeError("a bug in the model")
            return answerer.answer(story, question)

    failing = TestClient(create_app(Failing()))
    with caplog.at_level(logging.INFO):
        failing.post("/answer", content=b"{", headers=JSON)
        failing.post("/answer", json={"story": STORY})
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        failed = failing.post("/answer", json={"story": STORY, "question": "fail"})
        assert_error(failed, 500, "internal error")
        assert_secured(failed)
    assert any(r.exc_info and "a bug in the model" in str(r.exc_info[1]) for r in caplog.records)
    assert_answers_mary(failing)
    assert_error(failing.get("/nowhere"), 404)
    assert_error(failing.get("/answer"), 405)


def test_tasks_and_stories_for_the_page(client, answerer):
    tasks = client.get("/api/tasks").json()
    assert tasks["stories"] is True and tasks["tasks"] == [{"task": 1, "name": "single-supporting-fact"}]
    r = client.get("/api/stories", params={"task": 1, "limit": 3})
    assert r.status_code == 200
    stories = r.json()["stories"]
    assert len(stories) == 3
    first = stories[0]
    assert first["statements"][:2] == ["John travelled to the hallway.", "Mary journeyed to the bathroom."]
    assert first["questions"][0] == {"question": "Where is John?", "answer": "hallway", "statements": 2,
                                     "supporting": [0]}
    assert [q["statements"] for q in first["questions"]] == [2, 4, 6, 8, 10] and len(first["statements"]) == 10
    assert len(client.get("/api/stories?task=1").json()["stories"]) == 50
    for query, name in (("", "task"), ("?task=one", "task"), ("?task=2", "task"), ("?task=1&limit=0", "limit"),
                        ("?task=1&limit=100000000000000000000000", "limit")):
        assert assert_error(client.get("/api/stories" + query), 400)["field"] == name
    no_data = TestClient(create_app(answerer))
    assert no_data.get("/api/tasks").json()["stories"] is False
    assert_error(no_data.get("/api/stories?task=1"), 404, "--data")


def test_the_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for testid in ("task", "example", "story", "question", "ask", "answer", "heatmap", "error"):
        assert f'data-testid="{testid}"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    script = client.get("/static/page.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "fetch(" in script.text and "https://" not in script.text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):  # text stays text
        assert sink not in script.text, sink
    assert client.get("/static/page.css").status_code == 200


# --- a real server ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(checkpoint: Path, data_root: Path | None, log_dir: Path, *flags: str, env: dict | None = None,
            log_name: str = "serve.log"):
    """``memjax serve`` of ``checkpoint`` (with ``flags``, and ``env`` added to the environment) in a
    subprocess, logging to ``log_dir/log_name``; its URL. Stopped with SIGTERM, after which it must exit
    with status 0."""
    port = free_port()
    log_path = log_dir / log_name
    env = {**os.environ, **({"MEMJAX_DATA": str(data_root)} if data_root else {}), **(env or {})}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(MEMJAX + ["serve", "--checkpoint", str(checkpoint), "--port", str(port), *flags],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(proc, url, log_path)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert status == 0, log_path.read_text()[-3000:]
    assert "Finished server process" in log_path.read_text() and "memjax serve: stopped" in log_path.read_text()


@pytest.fixture(scope="module")
def server(trained, data_root, tmp_path_factory):
    with serving(trained, data_root, tmp_path_factory.mktemp("server"), "--allowed-host", "memjax.test",
                 "--request-timeout", "3") as url:
        yield url


def wait_for_health(proc: subprocess.Popen, url: str, log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"memjax serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"memjax serve did not answer /health within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def test_a_real_server_survives_bad_requests(server):
    with httpx.Client(base_url=server, timeout=60) as http:
        assert http.get("/health").json()["status"] == "ok"
        assert_answers_mary(http)
        assert_error(http.post("/answer", content=b'{"story": [', headers={"content-type": "application/json"}),
                     400, "malformed JSON")
        assert_answers_mary(http)
        assert_error(http.post("/answer", json={"story": STORY}), 422, "question")
        assert_answers_mary(http)
        assert_error(http.post("/answer", content=b"x" * (4 * LIMIT), headers=JSON), 413)
        assert_answers_mary(http)
        assert_error(http.post("/answer", content=iter([b"[" * 1024] * 100), headers=JSON), 413)  # chunked
        assert http.get("/health").status_code == 200
        assert_answers_mary(http)
    for body in (b"{", b"x" * (2 * LIMIT)):  # a fresh connection each, as a plain client would
        assert httpx.post(server + "/answer", content=body, headers=JSON, timeout=60).status_code in (400, 413)
    with httpx.Client(base_url=server, timeout=60) as http:
        assert_answers_mary(http)


def test_a_real_server_answers_the_hosts_it_serves_only(server):
    port = server.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "memjax.test", f"MEMJAX.TEST:{port}"):
        r = httpx.post(server + "/answer", json=GOOD, headers={"host": host}, timeout=60)
        assert r.status_code == 200 and r.json()["answer"] == "office", (host, r.text)
        assert_secured(r)
    for host in (f"evil.example:{port}", "memjax.test.evil.example", f"10.1.2.3:{port}"):
        r = httpx.get(server + "/", headers={"host": host}, timeout=60)
        assert assert_error(r, 400, "does not serve the host")["field"] == "host"
        assert_secured(r)
    assert_error(httpx.post(server + "/answer", content=json.dumps(GOOD), headers={"content-type": "text/plain"},
                            timeout=60), 415)


def test_serve_says_in_one_line_why_it_cannot_start(trained, tmp_path):
    r = run(["serve", "--checkpoint", str(tmp_path / "nowhere"), "--port", str(free_port())])
    assert r.returncode == 2 and r.stderr.startswith("memjax: error:") and len(r.stderr.splitlines()) == 1, r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = run(["serve", "--checkpoint", str(trained), "--port", str(busy.getsockname()[1])])
    assert r.returncode == 2 and r.stderr.startswith("memjax: error: cannot listen on 127.0.0.1:"), r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr
    r = run(["serve", "--checkpoint", str(trained), "--port", str(free_port()), "--allowed-host", "a b"])
    assert r.returncode == 2 and r.stderr.startswith("memjax: error: --allowed-host: not a host name: 'a b'"), r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr
    for seconds in ("0", "nan", "inf"):
        r = run(["serve", "--checkpoint", str(trained), "--request-timeout", seconds])
        assert r.returncode == 2 and "--request-timeout" in r.stderr, r.stderr
    usage = run(["serve", "--help"])
    assert usage.returncode == 0 and "--allowed-host" in usage.stdout and "--request-timeout" in usage.stdout


def test_a_server_whose_stdout_is_closed_goes_on_quietly(data_root, tmp_path):
    """``memjax serve ... | head -1``: stdout's reader goes away after one line. The server goes on serving,
    the lines for stdout (its second line, uvicorn's access log, "stopped") are dropped without a traceback
    or a "--- Logging error ---" each, and SIGTERM still stops it with status 0."""
    save_untrained(tmp_path / "run", "memn2n", data_root)
    port, log_path = free_port(), tmp_path / "serve.err"
    env = {**os.environ, "MEMJAX_DATA": str(data_root)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(MEMJAX + ["serve", "--checkpoint", str(tmp_path / "run"), "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=log, env=env)
    try:
        assert proc.stdout.readline().startswith(b"memjax serve: model ")
        proc.stdout.close()
        url = f"http://127.0.0.1:{port}"
        wait_for_health(proc, url, log_path)
        for _ in range(3):  # each is a line of uvicorn's access log, for the closed stdout
            assert httpx.post(url + "/answer", json=GOOD, timeout=60).status_code == 200  # an untrained model
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=30)
    err = log_path.read_text()
    assert status == 0, err[-3000:]
    assert "Finished server process" in err, err[-3000:]
    for word in ("Traceback", "Logging error", "BrokenPipe", "Exception ignored"):
        assert word not in err, err[-3000:]


# --- slow clients: a deadline per request (memjax.serve.protocol), against uvicorn in a thread ------------

class Quick:
    """A stand-in model: answers "office" at once, or after 1.5 s when the question is "slow?"."""

    label, tasks, memory_size = "quick", [1], 50

    def answer(self, story, question):
        from memjax.infer import Answer

        if question == "slow?":
            time.sleep(1.5)
        return Answer("office", 1.0, [], [], [("office", 1.0)])


@contextlib.contextmanager
def uvicorn_thread(app, request_timeout: float):
    """``app`` under uvicorn with memjax serve's protocol and limits, in a thread of this process; its port."""
    import uvicorn

    from memjax.serve.protocol import KEEP_ALIVE_TIMEOUT, MAX_HEAD, protocol

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), http=protocol(request_timeout), ws="none",
                            lifespan="off", log_config=None, access_log=False,
                            timeout_keep_alive=KEEP_ALIVE_TIMEOUT, h11_max_incomplete_event_size=MAX_HEAD)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield config.port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def quick_port():
    """A server whose requests must arrive within 1 s."""
    with uvicorn_thread(create_app(Quick(), allowed_hosts=["127.0.0.1"]), request_timeout=1.0) as port:
        yield port


def trickle(port: int, head: bytes, drip: bytes = b"", every: float = 0.2, limit: float = 8.0) -> tuple[bytes, float]:
    """Sends ``head``, then ``drip`` a byte every ``every`` seconds (a slow client); returns what the server sent
    before closing the connection and the seconds it took to close it (``limit`` if it did not)."""
    start = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.sendall(head)
        sock.settimeout(every)
        position = 0
        while time.monotonic() - start < limit:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                chunk = None
            except ConnectionResetError:
                break
            if chunk == b"":
                break
            if chunk:
                received += chunk
                continue
            if position < len(drip):
                try:
                    sock.sendall(drip[position:position + 1])
                except (BrokenPipeError, ConnectionResetError):
                    break
                position += 1
    return received, time.monotonic() - start


def raw_response(raw: bytes) -> tuple[int, dict, dict]:
    """The status, headers (lower-case names) and JSON body of one raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    assert b"\n" not in body.rstrip(b"\n"), body  # one line
    return int(lines[0].split()[1]), headers, json.loads(body)


def request_head(length: int, host: str = "127.0.0.1") -> bytes:
    return (f"POST /answer HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def test_headers_that_trickle_in_are_cut_off_with_408(quick_port):
    raw, seconds = trickle(quick_port, b"POST /answer HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: " + b"a" * 100)
    assert 0.9 < seconds < 4, seconds  # 1 s, however often a byte comes
    status, headers, body = raw_response(raw)
    assert status == 408 and "1 s" in body["error"] and headers["connection"] == "close"
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"


def test_a_body_that_trickles_in_is_cut_off_with_408(quick_port):
    body = json.dumps(GOOD).encode()
    raw, seconds = trickle(quick_port, request_head(len(body)) + body[:10], body[10:])
    assert 0.9 < seconds < 4, seconds
    status, _, error = raw_response(raw)
    assert status == 408 and "did not arrive" in error["error"]


def test_a_connection_that_sends_nothing_is_closed_without_a_word(quick_port):
    raw, seconds = trickle(quick_port, b"")
    assert raw == b"" and 0.9 < seconds < 4, (raw, seconds)


def test_the_deadline_spares_requests_that_arrive_in_time(quick_port):
    """Each request on a keep-alive connection gets its own second, and a slow answer is not cut off: the
    clock stops once the request is whole."""
    with httpx.Client(base_url=f"http://127.0.0.1:{quick_port}", timeout=10) as http:
        for question in ("Where is Mary?", "slow?", "Where is Mary?", "Where is Mary?"):
            r = http.post("/answer", json={"story": STORY, "question": question})
            assert r.status_code == 200 and r.json()["answer"] == "office", r.text
            time.sleep(0.3)  # idle between requests: over 2 s on one connection in all


def test_a_head_over_16_kib_is_a_json_400(quick_port):
    """h11 refuses a request line and headers still incomplete after 16 KiB (here without their end)."""
    raw, _ = trickle(quick_port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 17000)
    status, headers, body = raw_response(raw)
    assert status == 400 and "invalid HTTP request" in body["error"] and headers["x-content-type-options"] == "nosniff"


def test_a_real_server_cuts_off_requests_that_trickle_in(server):
    port = int(server.rsplit(":", 1)[1])
    raw, seconds = trickle(port, b"POST /answer HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: " + b"a" * 100,
                           every=0.5, limit=20)
    assert 2.9 < seconds < 10, seconds  # --request-timeout 3
    status, headers, body = raw_response(raw)
    assert status == 408 and "3 s" in body["error"] and headers["x-content-type-options"] == "nosniff"
    with httpx.Client(base_url=server, timeout=60) as http:
        assert_answers_mary(http)


# --- the page in a browser -------------------------------------------------------------------------

def browser_missing(reason: str):
    """Skips, or fails where MEMJAX_REQUIRE_BROWSER is set (CI installs the browser)."""
    if os.environ.get("MEMJAX_REQUIRE_BROWSER"):
        pytest.fail(f"{reason} (MEMJAX_REQUIRE_BROWSER is set)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        browser_missing("selenium is not installed: pip install 'memjax[dev]'")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
            browser_missing(f"{path} not found: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def page_wait(browser, seconds: float = 60):
    """A WebDriverWait that reads on when an element it found is gone: the pages replace their tables and
    lists when an answer arrives, between a find and a read (StaleElementReferenceException under load)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, ignored_exceptions=(StaleElementReferenceException,))


def test_the_page_answers_and_draws_the_attention(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    wait = page_wait(browser)
    browser.get(server + "/")
    by_id = browser.find_element
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#example optgroup"))  # tasks and stories loaded
    assert "task(s) 1" in by_id(By.ID, "model").text

    by_id(By.ID, "story").send_keys("\n".join(STORY))
    by_id(By.ID, "question").send_keys(QUESTION)
    by_id(By.ID, "ask").click()
    wait.until(lambda d: d.find_element(By.ID, "answer").text)
    assert by_id(By.ID, "answer").text == "office"
    assert "probability" in by_id(By.ID, "probability").text
    assert not by_id(By.ID, "error").is_displayed()
    heads = browser.find_elements(By.CSS_SELECTOR, "#heatmap thead th")
    assert [h.text for h in heads] == ["#", "Statement", "Hop 1", "Hop 2", "Hop 3"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "td.statement").text for r in rows] == STORY
    for row in rows:
        cells = row.find_elements(By.CSS_SELECTOR, "td.weight")
        assert len(cells) == 3
        for c in cells:
            assert float(c.text) == pytest.approx(float(c.get_attribute("data-weight")), abs=0.006)
            assert background(c)[:3] == (29, 78, 216)
    office = rows[2].find_elements(By.CSS_SELECTOR, "td.weight")
    kitchen = rows[0].find_elements(By.CSS_SELECTOR, "td.weight")
    assert all(background(o)[3] > 0.5 > background(k)[3] for o, k in zip(office, kitchen))

    Select(by_id(By.ID, "example")).select_by_index(1)  # the first bAbI story's first question
    assert by_id(By.ID, "question").get_attribute("value") == "Where is John?"
    by_id(By.ID, "ask").click()
    wait.until(lambda d: "bAbI says hallway" in d.find_element(By.ID, "expected").text)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr")) == 2

    by_id(By.ID, "question").clear()
    by_id(By.ID, "question").send_keys("?")
    by_id(By.ID, "ask").click()
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "no words" in by_id(By.ID, "error").text

    # the user's text is shown as text: markup in a statement is not parsed into elements
    markup = '<img src=x onerror="document.title=1">Mary went to the <b>office</b>.'
    by_id(By.ID, "story").clear()
    by_id(By.ID, "story").send_keys(markup + "\n" + STORY[1])
    by_id(By.ID, "question").clear()
    by_id(By.ID, "question").send_keys(QUESTION)
    by_id(By.ID, "ask").click()
    first = "#heatmap tbody tr td.statement"
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, first) and d.find_element(By.CSS_SELECTOR, first).text == markup)
    assert not browser.find_elements(By.CSS_SELECTOR, "#result img, #result b, #error img")
    assert "img" in by_id(By.ID, "unknown").text and browser.title == "memjax: ask a memory network"


def background(cell) -> tuple[int, int, int, float]:
    """A heat-map cell's computed background colour as (red, green, blue, opacity)."""
    text = cell.value_of_css_property("background-color")  # rgba(r, g, b, a), or rgb(r, g, b) when opaque
    parts = [p.strip() for p in text[text.index("(") + 1: text.rindex(")")].split(",")]
    return int(parts[0]), int(parts[1]), int(parts[2]), float(parts[3]) if len(parts) == 4 else 1.0


@pytest.mark.parametrize("family, columns, distribution", [
    ("dmn+", ["Pass 1", "Pass 2", "Pass 3"], True),  # gates per episodic pass: a softmax over the statements
    ("qrn", ["Layer 1", "Layer 2"], False),  # update gates per layer, each in (0, 1)
    ("entnet", [f"Slot {j}" for j in range(1, 21)], False),  # each slot's gate per statement, in (0, 1)
])
def test_the_page_shows_other_families_attention_in_their_own_columns(data_root, browser, tmp_path_factory, family,
                                                                      columns, distribution):
    """DMN+, QRN and EntNet through the same page, each with its own kind of attention in columns named
    after it (untrained models: what the page shows, not how well they answer, is tested here)."""
    from selenium.webdriver.common.by import By

    out = tmp_path_factory.mktemp(family.replace("+", "_plus")) / "run"
    save_untrained(out, family, data_root)
    with serving(out, data_root, out.parent) as url:
        browser.get(url + "/")
        wait = page_wait(browser)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#example optgroup"))
        browser.find_element(By.ID, "story").send_keys("\n".join(STORY))
        browser.find_element(By.ID, "question").send_keys(QUESTION)
        browser.find_element(By.ID, "ask").click()
        wait.until(lambda d: d.find_element(By.ID, "answer").text)
        heads = browser.find_elements(By.CSS_SELECTOR, "#heatmap thead th")
        assert [h.text for h in heads] == ["#", "Statement", *columns]
        rows = browser.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr")
        assert len(rows) == len(STORY)
        for p in range(len(columns)):
            column = [float(r.find_elements(By.CSS_SELECTOR, "td.weight")[p].get_attribute("data-weight")) for r in rows]
            if distribution:
                assert sum(column) == pytest.approx(1.0, abs=1e-4)
            else:
                assert all(0.0 < w < 1.0 for w in column), column


def save_untrained(out: Path, family: str, data_root: Path) -> None:
    """A run folder holding an untrained ``family`` model of bAbI-1k task 1, as ``memjax train --out`` saves one."""
    import dataclasses

    import jax

    from memjax.data.dataset import load_babi
    from memjax.models import FAMILIES
    from memjax.train.checkpoint import save_model
    from memjax.train.protocol import build_configs

    ds = load_babi([1], "en", str(data_root), 50)[0]
    mcfg, _ = build_configs(family, ds, False, {"dim": 12}, {})
    params = FAMILIES[family][0](mcfg).init(jax.random.key(0))
    save_model(out / "model", {"1": {"params": params, "family": family, "model": dataclasses.asdict(mcfg),
                                     "vocab": list(ds.vocab.words), "memory_size": ds.memory_size, "tasks": [1]}})


def test_a_story_over_the_answerers_limits_is_413_naming_the_field():
    from starlette.testclient import TestClient

    from memjax.infer import LimitError
    from memjax.serve.app import create_app

    class OverLimits:  # an answerer whose limits (memjax.infer.Limits) refuse the story
        label, tasks, memory_size = "x", (1,), 50

        def answer(self, story, question):
            raise LimitError(f"the story has {len(story)} statements: at most 1 is accepted", "story")

    r = TestClient(create_app(OverLimits())).post("/answer", json={"story": ["A b.", "C d."], "question": "Where?"})
    assert (r.status_code, r.json()["field"]) == (413, "story") and "at most 1" in r.json()["error"]
