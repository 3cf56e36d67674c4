"""``memjax serve`` under load: concurrent clients mixing good requests with bad ones.

Commands (repository root; bAbI data through $MEMJAX_DATA or memjax's data home):

    python benchmarks/serve_load.py                       # trains a small task-1 model first (about 10 s)
    python benchmarks/serve_load.py --checkpoint runs/task1 --clients 8 --requests 200

It starts ``memjax serve`` (``--request-timeout``, default 2 s) and runs ``--clients`` threads of
``--requests`` requests each, each on its own keep-alive connection, drawn at random (``--seed``):
half good questions about the model's task's bAbI test stories, half of the kinds in ``BAD``
(malformed JSON, wrong types, a missing field, the wrong or no Content-Type, an oversized body, a
story of too many statements, a Host not served, a lone surrogate, a question of no words, a wrong
method, and a body that trickles in past the request timeout).

It prints one row per kind: the requests, the status codes seen, the one expected and how many got
it; then the good requests' latency and the throughput. Every good request must get 200 with the
answer and probability that :class:`memjax.infer.Answerer` gives in this process for the same
story and question; every bad one its 4xx; no 5xx, no exception, and no traceback in the server's
log. The exit status is 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import memjax

memjax.configure_xla()  # as the server does: the same devices, the same numbers

import httpx  # noqa: E402

from memjax.infer import Answerer  # noqa: E402
from memjax.serve import story_source  # noqa: E402
from memjax.serve.stories import example_stories  # noqa: E402

MEMJAX = [sys.executable, "-m", "memjax"]
JSON = {"content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_small(out: Path) -> None:
    """MemN2N's default recipe on bAbI-1k task 1, one run (what the tests train)."""
    r = subprocess.run(MEMJAX + ["train", "--tasks", "1", "--seeds", "1", "--quiet", "--out", str(out)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"serve_load: training failed: {r.stderr.strip()[-2000:]}")


def good_questions(checkpoint: Path, answerer: Answerer, limit: int = 50) -> list[tuple[list[str], str, dict]]:
    """(story, question, expected answer) for the first ``limit`` test stories of the model's first task."""
    root, set_name = story_source(checkpoint)
    if root is None:
        sys.exit("serve_load: no bAbI data: set MEMJAX_DATA or run memjax data download")
    task = int(answerer.tasks[0]) if answerer.tasks else 1
    out = []
    for story in example_stories(root, set_name, task, limit):
        for q in story["questions"]:
            statements = story["statements"][:q["statements"]]
            result = answerer.answer(statements, q["question"])
            out.append((statements, q["question"], {"answer": result.answer, "probability": result.probability}))
    return out


def slow_body(base: str, timeout: float) -> int:
    """A request whose body trickles in (a byte every 0.25 s): the status the server answers with."""
    host, port = base.removeprefix("http://").split(":")
    body = json.dumps({"story": ["Mary went home."], "question": "Where is Mary?"}).encode()
    head = (f"POST /answer HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=timeout + 10) as sock:
        sock.sendall(head + body[:5])
        sock.settimeout(0.25)
        received, i = b"", 5
        deadline = time.monotonic() + timeout + 10
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                if i < len(body):
                    try:
                        sock.sendall(body[i:i + 1])
                    except OSError:
                        break
                    i += 1
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
    if not received.startswith(b"HTTP/1.1 "):
        return 0  # closed without a response
    return int(received.split()[1])


# kind: (expected status, request) where request(http, good) sends it and returns the response's status
BAD = {
    "bad_json": (400, lambda http, g: http.post("/answer", content=b'{"story": [', headers=JSON)),
    "wrong_type": (422, lambda http, g: http.post("/answer", json={"story": 5, "question": g[1]})),
    "missing_field": (422, lambda http, g: http.post("/answer", json={"story": g[0]})),
    "text_plain": (415, lambda http, g: http.post("/answer", content=json.dumps({"story": g[0], "question": g[1]}),
                                                  headers={"content-type": "text/plain"})),
    "no_content_type": (415, lambda http, g: http.post("/answer",
                                                       content=json.dumps({"story": g[0], "question": g[1]}))),
    "oversized": (413, lambda http, g: http.post("/answer", content=b'{"story": "' + b"a" * 70_000 + b'"}',
                                                 headers=JSON)),
    "many_statements": (413, lambda http, g: http.post("/answer", json={"story": ["a"] * 1001, "question": g[1]})),
    "bad_host": (400, lambda http, g: http.post("/answer", json={"story": g[0], "question": g[1]},
                                                headers={"host": "evil.example"})),
    "surrogate": (400, lambda http, g: http.post("/answer", headers=JSON, content=json.dumps(
        {"story": g[0] + ["Mary went to the \ud800."], "question": g[1]}).encode("ascii"))),
    "no_words": (422, lambda http, g: http.post("/answer", json={"story": g[0], "question": "?"})),
    "wrong_method": (405, lambda http, g: http.get("/answer")),
}


def client(base: str, requests: int, seed: int, goods: list, timeout: float, results: list, slow_every: int) -> None:
    """One client: ``requests`` requests on one keep-alive connection; appends (kind, status, ok, seconds)."""
    rng = random.Random(seed)
    kinds = list(BAD)
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in range(requests):
            good = rng.choice(goods)
            start = time.perf_counter()
            try:
                if slow_every and i % slow_every == slow_every - 1:
                    kind, status = "slow_body", slow_body(base, timeout)
                    ok = status == 408
                elif rng.random() < 0.5:
                    kind = "valid"
                    r = http.post("/answer", json={"story": good[0], "question": good[1]})
                    status = r.status_code
                    got = r.json() if status == 200 else {}
                    ok = (status == 200 and got.get("answer") == good[2]["answer"]
                          and abs(got.get("probability", -1) - good[2]["probability"]) < 1e-4)
                else:
                    kind = rng.choice(kinds)
                    expected, send = BAD[kind]
                    r = send(http, good)
                    status = r.status_code
                    ok = status == expected and r.headers.get("content-type") == "application/json" \
                        and "\n" not in r.text and isinstance(r.json().get("error"), str)
            except Exception as e:  # noqa: BLE001 - every failure is a row of the table
                kind, status, ok = "exception", 0, False
                print(f"serve_load: client {seed}: {type(e).__name__}: {e}", file=sys.stderr)
            results.append((kind, status, ok, time.perf_counter() - start))


def report(results: list, elapsed: float) -> bool:
    """Prints the table; True when every request got what it should."""
    expected = {"valid": 200, "slow_body": 408, **{k: v[0] for k, v in BAD.items()}, "exception": "-"}
    by_kind: dict[str, list] = collections.defaultdict(list)
    for row in results:
        by_kind[row[0]].append(row)
    print(f"{'kind':<16} {'requests':>8}  {'statuses seen':<22} {'expected':>8}  {'as expected':>11}")
    for kind in ["valid", *BAD, "slow_body", "exception"]:
        rows = by_kind.get(kind)
        if not rows:
            continue
        seen = collections.Counter(r[1] for r in rows)
        statuses = ", ".join(f"{s}x{n}" for s, n in sorted(seen.items()))
        print(f"{kind:<16} {len(rows):>8}  {statuses:<22} {expected[kind]!s:>8}  {sum(r[2] for r in rows):>5}/{len(rows)}"
              + ("  (right answers)" if kind == "valid" else ""))
    statuses = collections.Counter(r[1] for r in results)
    five = sum(n for s, n in statuses.items() if s >= 500)
    latency = sorted(r[3] for r in by_kind.get("valid", []))
    timing = (f"; valid latency p50 {1000 * statistics.median(latency):.0f} ms, "
              f"p95 {1000 * latency[int(0.95 * (len(latency) - 1))]:.0f} ms") if latency else ""
    print(f"total {len(results)} requests in {elapsed:.1f} s ({len(results) / elapsed:.0f}/s); 5xx: {five}{timing}")
    return five == 0 and all(r[2] for r in results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a training run's --out folder (default: train a small one)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--request-timeout", type=float, default=2.0, help="memjax serve --request-timeout")
    parser.add_argument("--slow-every", type=int, default=50,
                        help="every Nth request of a client trickles its body in (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        checkpoint = Path(args.checkpoint) if args.checkpoint else Path(tmp) / "run"
        if not args.checkpoint:
            print("serve_load: training a small model (bAbI-1k task 1)...", flush=True)
            train_small(checkpoint)
        answerer = Answerer.load(checkpoint)
        goods = good_questions(checkpoint, answerer)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = Path(tmp) / "serve.log"
        env = {**os.environ, "MEMJAX_CACHE": "off"}
        with open(log_path, "w") as log:
            server = subprocess.Popen(MEMJAX + ["serve", "--checkpoint", str(checkpoint), "--port", str(port),
                                                "--request-timeout", str(args.request_timeout)],
                                      stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"serve_load: memjax serve did not start:\n{log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            with httpx.Client(base_url=base, timeout=60) as http:  # compiled before the clock starts
                http.post("/answer", json={"story": goods[0][0], "question": goods[0][1]})
            results: list = []
            threads = [threading.Thread(target=client, args=(base, args.requests, args.seed * 1000 + c, goods,
                                                              args.request_timeout, results, args.slow_every))
                       for c in range(args.clients)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            healthy = httpx.get(base + "/health", timeout=10).status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=60)
        log_text = log_path.read_text()
    print(f"memjax serve of {checkpoint if args.checkpoint else 'a small bAbI-1k task 1 model'}: "
          f"{args.clients} clients x {args.requests} requests, request timeout {args.request_timeout:g} s")
    ok = report(results, elapsed)
    tracebacks = log_text.count("Traceback")
    print(f"server healthy afterwards: {healthy}; tracebacks in its log: {tracebacks}")
    ok = ok and healthy and tracebacks == 0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
