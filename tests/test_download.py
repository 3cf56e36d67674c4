"""bAbI on first use: ``memjax data download|import|list`` and the data home, against a local HTTP server.

Every URL here is on 127.0.0.1: the official URLs are replaced (``--url``, ``$MEMJAX_BABI_URL`` or a
monkeypatch) in every test that could reach them.
"""

import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import tarfile
import signal
import threading
import time
from pathlib import Path

import pytest

from memjax.data import download

TASK1 = ("1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary? \tbathroom\t1\n"
         "4 Daniel went back to the hallway.\n5 Where is Daniel? \thallway\t4\n")


def _archive(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


RELEASE = {f"tasks_1-20_v1-2/{v}/qa1_single-supporting-fact_{split}.txt": TASK1
           for v in ("en", "hn") for split in ("train", "test")}
RELEASE["tasks_1-20_v1-2/README.txt"] = "a fake bAbI release for the tests\n"
ARCHIVE = _archive(RELEASE)
SHA = hashlib.sha256(ARCHIVE).hexdigest()
JUNK = b"this is not a tar archive at all\n" * 100


SLOW_SENT, SLOW_RELEASE = threading.Event(), threading.Event()  # /slow.tar.gz: its first bytes are out; it may end


class _Handler(http.server.BaseHTTPRequestHandler):
    bodies = {"/archive.tar.gz": ARCHIVE, "/half.tar.gz": ARCHIVE, "/slow.tar.gz": ARCHIVE, "/junk.tar.gz": JUNK}

    def do_GET(self):
        body = self.bodies.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/half.tar.gz":  # half the bytes, then the connection closes
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path == "/slow.tar.gz":  # a little, then a wait until the test has interrupted the client
            self.wfile.write(body[:100])
            self.wfile.flush()
            SLOW_SENT.set()
            SLOW_RELEASE.wait(60)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serving(handler=_Handler):
    """Serves ``handler`` (a subclass of _Handler with its own ``bodies``) on 127.0.0.1: yields the base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server():
    yield from serving()


@pytest.fixture
def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/tasks_1-20_v1-2.tar.gz"


def memjax(args, home, *, setup="", **env):
    """Runs the command line in a fresh process with MEMJAX_HOME=home; no MEMJAX_DATA (nor MEMJAX_DIALOG_DATA),
    no proxies. ``setup``: Python code run in that process first (to set module attributes)."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("MEMJAX_DATA", "MEMJAX_DIALOG_DATA", "MEMJAX_BABI_URL") and "proxy" not in k.lower()}
    e.update(MEMJAX_HOME=str(home), **env)
    program = ["-c", f"{setup}\nfrom memjax.cli import run\nrun()"] if setup else ["-m", "memjax"]
    return subprocess.run([sys.executable, *program, *args], capture_output=True, text=True, env=e, timeout=120)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def one_error_line(r, *expected):
    """The command failed with status 2 and its last stderr line is the only error, naming ``expected``."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and lines and lines[-1].startswith("memjax: error: "), r.stderr
    assert sum(line.startswith("memjax: error") for line in lines) == 1, r.stderr
    for text in expected:
        assert text in lines[-1], (text, r.stderr)
    return lines[-1]


def test_download_verifies_unpacks_and_lists(server, tmp_path):
    home = tmp_path / "home"
    r = memjax(["data", "download", "--url", f"{server}/archive.tar.gz", "--sha256", SHA, "--set", "en"], home)
    assert r.returncode == 0, r.stderr
    root = home / "data" / "tasks_1-20_v1-2"
    assert r.stdout.strip() == f"bAbI en: {root / 'en'}"
    assert (root / "en" / "qa1_single-supporting-fact_train.txt").read_text() == TASK1
    assert "downloading bAbI from" in r.stderr and "100%" in r.stderr  # plain progress lines: not a terminal
    assert listing(home) == ["data", "data/tasks_1-20_v1-2", *sorted(
        f"data/{n}" for n in [*RELEASE, "tasks_1-20_v1-2/en", "tasks_1-20_v1-2/hn"])]  # no staging left
    r = memjax(["data", "list"], home)
    assert r.returncode == 0, r.stderr
    assert f"bAbI tasks_1-20_v1-2: {root}" in r.stdout
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines() if line.startswith("  ")}
    assert rows["en"] == ["2", "files", str(root / "en")] and rows["hn"][:2] == ["2", "files"]
    assert rows["en-10k"] == ["missing"] and set(rows) == set(download.VARIANTS)
    # again: already there, no network needed (the URL is now a closed port)
    r = memjax(["data", "download", "--url", "http://127.0.0.1:9/x.tar.gz", "--set", "hn"], home)
    assert r.returncode == 0 and r.stdout.strip() == f"bAbI hn: {root / 'hn'}" and not r.stderr, r.stderr
    r = memjax(["data", "download", "--set", "shuffled"], home, MEMJAX_BABI_URL="http://127.0.0.1:9/x")
    one_error_line(r, "shuffled: not found", "holds: en, hn")


def test_list_of_an_empty_home_and_bad_flags(tmp_path):
    r = memjax(["data", "list"], tmp_path / "nothing")
    assert r.returncode == 0 and "not there" in r.stdout and "memjax data import FILE" in r.stdout
    r = memjax(["data", "download", "--set", "fr"], tmp_path)
    assert r.returncode == 2 and "invalid choice: 'fr'" in r.stderr
    r = memjax(["data", "import", "x.tar.gz", "--sha256", "abc"], tmp_path)
    assert r.returncode == 2 and "64 hexadecimal digits" in r.stderr
    assert listing(tmp_path) == []


@pytest.mark.parametrize("existing", [True, False])
def test_wrong_checksum_leaves_nothing(server, tmp_path, existing):
    home = tmp_path / "home"
    if existing:
        home.mkdir()
        (home / "other").write_text("the user's\n")
    before = listing(tmp_path)
    r = memjax(["data", "download", "--url", f"{server}/archive.tar.gz", "--sha256", "0" * 64], home)
    one_error_line(r, f"{server}/archive.tar.gz", f"sha256 is {SHA}, not {'0' * 64}")
    assert listing(tmp_path) == before
    r = memjax(["data", "download", "--url", f"{server}/archive.tar.gz"], home)  # the official checksum
    one_error_line(r, f"not {download.SHA256}")
    assert listing(tmp_path) == before


def test_interrupted_transfer_leaves_nothing_and_the_next_run_succeeds(server, tmp_path):
    home = tmp_path / "home"
    r = memjax(["data", "download", "--url", f"{server}/half.tar.gz", "--sha256", SHA], home)
    one_error_line(r, f"the download from {server}/half.tar.gz broke off", "nothing was kept", "memjax data import")
    assert listing(tmp_path) == []
    r = memjax(["data", "download", "--url", f"{server}/archive.tar.gz", "--sha256", SHA], home)
    assert r.returncode == 0 and download.is_release(home / "data" / "tasks_1-20_v1-2"), r.stderr


def test_a_killed_download_is_cleaned_up_by_the_next(server, tmp_path, monkeypatch):
    home = tmp_path / "home"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = home / f".babi-download-{download._host()}-{dead.stdout.strip()}-abc"
    (stale / "unpacked").mkdir(parents=True)
    (stale / "tasks_1-20_v1-2.tar.gz").write_bytes(ARCHIVE[:100])
    elsewhere = home / f".babi-download-otherhost-{dead.stdout.strip()}-abc"  # another host's, still fresh
    elsewhere.mkdir()
    r = memjax(["data", "download", "--url", f"{server}/archive.tar.gz", "--sha256", SHA], home)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in home.iterdir()) == [elsewhere.name, "data"]
    os.utime(elsewhere, (0, 0))  # a day old: stale wherever it came from
    monkeypatch.setenv("MEMJAX_HOME", str(home))
    with download._Staging():  # what the next download starts with
        pass
    assert sorted(p.name for p in home.iterdir()) == ["data"]


def test_ctrl_c_during_the_transfer_leaves_nothing(server, tmp_path):
    home = tmp_path / "home"
    e = {k: v for k, v in os.environ.items() if k != "MEMJAX_DATA" and "proxy" not in k.lower()}
    e["MEMJAX_HOME"] = str(home)
    # SIGINT handled as in a terminal's foreground job: a test run started in the background (`pytest &`, nohup)
    # has it ignored, and a child inherits that (this test's failures in such runs: SigIgn held SIGINT)
    p = subprocess.Popen([sys.executable, "-m", "memjax", "data", "download", "--url", f"{server}/slow.tar.gz",
                          "--sha256", SHA], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    SLOW_SENT.clear()
    SLOW_RELEASE.clear()
    try:
        assert SLOW_SENT.wait(120), "the download did not start"
        time.sleep(0.5)  # the client is reading the rest, which does not come until it is interrupted
        state = _signal_state(p.pid)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        SLOW_RELEASE.set()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130 and err.strip().splitlines()[-1] == "memjax: interrupted", (err, state)
    assert listing(tmp_path) == []


def _signal_state(pid: int) -> str:
    """The child's signal masks and threads (from /proc) and this process's SIGINT state, for the message
    of an interrupt that did not stop the download (seen twice in full runs, never alone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as e:
        return str(e)
    child = "; ".join(line for line in lines if line.startswith(("Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")))
    return (f"child: {child}; this process: SIGINT handler {signal.getsignal(signal.SIGINT)}, "
            f"blocked {sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))}")


def test_the_next_url_is_tried_when_one_cannot_be_reached(server, tmp_path, monkeypatch, closed_port_url, capsys):
    monkeypatch.setenv("MEMJAX_HOME", str(tmp_path))
    monkeypatch.delenv("MEMJAX_BABI_URL", raising=False)
    monkeypatch.setattr(download, "URLS", (closed_port_url, f"{server}/nope.tar.gz", f"{server}/archive.tar.gz"))
    assert download.download(sha256=SHA) == tmp_path / "data" / "tasks_1-20_v1-2"
    err = capsys.readouterr().err
    assert f"memjax: {closed_port_url} failed (Connection refused); trying {server}/nope.tar.gz" in err
    assert f"memjax: {server}/nope.tar.gz failed (HTTP 404 Not Found); trying {server}/archive.tar.gz" in err


def test_serve_shows_the_data_homes_stories(server, tmp_path, monkeypatch):
    from memjax.serve import story_source

    monkeypatch.setenv("MEMJAX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEMJAX_DATA", raising=False)
    assert story_source(tmp_path) == (None, "en")  # nothing there, and nothing downloaded for the page
    assert listing(tmp_path) == []
    download.download([f"{server}/archive.tar.gz"], SHA)
    assert story_source(tmp_path) == (tmp_path / "home" / "data" / "tasks_1-20_v1-2", "en")


def test_corrupt_archive_is_one_line(server, tmp_path):
    home = tmp_path / "home"
    junk_sha = hashlib.sha256(JUNK).hexdigest()
    r = memjax(["data", "download", "--url", f"{server}/junk.tar.gz", "--sha256", junk_sha], home)
    one_error_line(r, "cannot unpack tasks_1-20_v1-2.tar.gz")
    assert listing(tmp_path) == []
    other = _archive({"tasks_1-20_v1-2/en/qa2_two-supporting-facts_train.txt": TASK1})  # not the layout
    (tmp_path / "other.tar.gz").write_bytes(other)
    r = memjax(["data", "import", str(tmp_path / "other.tar.gz"), "--sha256", hashlib.sha256(other).hexdigest()], home)
    one_error_line(r, "does not hold the bAbI release", "tasks_1-20_v1-2/en/qa1_single-supporting-fact_train.txt")
    assert listing(home) == []


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt"])
def test_unsafe_archive_members_are_refused(tmp_path, name):
    bad = _archive({**RELEASE, name: "x\n"})
    (tmp_path / "bad.tar.gz").write_bytes(bad)
    home = tmp_path / "home"
    r = memjax(["data", "import", str(tmp_path / "bad.tar.gz"), "--sha256", hashlib.sha256(bad).hexdigest()], home)
    one_error_line(r, "unsafe path in the archive")
    assert listing(home) == [] and not (tmp_path / "evil.txt").exists()


def test_no_network_names_the_url_and_import(tmp_path, closed_port_url):
    home = tmp_path / "home"
    r = memjax(["data", "download", "--url", closed_port_url], home)
    assert not r.stdout and len(r.stderr.strip().splitlines()) == 1
    one_error_line(r, f"cannot download bAbI from {closed_port_url} (Connection refused)", "memjax data import FILE")
    assert listing(tmp_path) == []


def test_import_a_file_on_disk(tmp_path):
    archive = tmp_path / "tasks_1-20_v1-2.tar.gz"
    archive.write_bytes(ARCHIVE)
    home = tmp_path / "home"
    r = memjax(["data", "import", str(archive)], home)  # the official checksum: refused
    one_error_line(r, f"sha256 is {SHA}", "--sha256")
    assert listing(home) == []
    r = memjax(["data", "import", str(archive), "--sha256", SHA], home)
    assert r.returncode == 0 and r.stdout.strip().endswith(str(home / "data" / "tasks_1-20_v1-2")), r.stderr
    assert download.variants(home / "data" / "tasks_1-20_v1-2") == {"en": 2, "hn": 2}
    r = memjax(["data", "import", str(tmp_path / "missing.tar.gz")], tmp_path / "h2")
    one_error_line(r, "missing.tar.gz: file not found")


def test_first_use_downloads_into_the_data_home(server, tmp_path, monkeypatch, capsys):
    from memjax.data.babi import data_root, parse_file, task_files
    from memjax.data.dataset import load_babi

    monkeypatch.setenv("MEMJAX_HOME", str(tmp_path))
    monkeypatch.delenv("MEMJAX_DATA", raising=False)
    monkeypatch.delenv("MEMJAX_BABI_URL", raising=False)
    monkeypatch.setattr(download, "URLS", (f"{server}/archive.tar.gz",))
    monkeypatch.setattr(download, "SHA256", SHA)
    root = data_root()
    assert root == tmp_path / "data" / "tasks_1-20_v1-2"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("memjax: no --data or $MEMJAX_DATA: downloading bAbI once"), err
    assert f"from {server}/archive.tar.gz into {tmp_path / 'data'}" in err[0]
    assert len(parse_file(task_files(root, "en", 1, "holdout")["train"], 1)) == 2
    ds = load_babi([1], "en", None, valid="holdout")[0]  # a data-reading function, without --data or MEMJAX_DATA
    assert len(ds.test) == 2
    assert data_root() == root and not capsys.readouterr().err  # the second time: silent, no network
    monkeypatch.setenv("MEMJAX_DATA", str(tmp_path / "elsewhere"))  # MEMJAX_DATA still wins, unchanged
    with pytest.raises(download.DataError, match="elsewhere: data folder not found"):
        data_root()


def test_first_use_failure_is_one_line_naming_the_ways_out(tmp_path, closed_port_url):
    r = memjax(["train", "--tasks", "1"], tmp_path, MEMJAX_BABI_URL=closed_port_url)
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("memjax: no --data or $MEMJAX_DATA: downloading bAbI once") and len(lines) == 2
    one_error_line(r, closed_port_url, "memjax data import FILE", "pass --data DIR or set MEMJAX_DATA")
    assert listing(tmp_path) == []


def test_data_commands_import_no_jax(tmp_path, closed_port_url):
    program = ("import sys, memjax.cli as c\n"
               "code = c.main(sys.argv[1:])\n"
               "print(code, 'jax' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(MEMJAX_HOME=str(tmp_path))
    for args, status in ((["data", "list"], "0"), (["data", "download", "--url", closed_port_url], "2")):
        r = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.stdout.split()[-2:] == [status, "False"], (args, r.stdout, r.stderr)
