"""memjax serve with a dialog model: POST /chat (Starlette's TestClient and a real server), its refusals, the
routes of the other kind of server, and the chat page in headless Chromium."""

import contextlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="memjax serve needs starlette: pip install 'memjax[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (Starlette's TestClient)")

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: E402

from memjax.chat import Chatbot, KnowledgeBase, default_kb  # noqa: E402
from memjax.infer import Limits  # noqa: E402
from memjax.serve import create_app, create_chat_app  # noqa: E402
from test_serve import assert_error, assert_secured, browser, free_port, page_wait  # noqa: E402,F401
from test_serve import serving as serve_in_process  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

JSON = {"content-type": "application/json"}
TURNS = ["hello", "i'd like thai food in rome", "the phone number please"]
# test_chat's conversation: (thai, rome) and resto_c are in no training dialog
BOT_TURNS = ["hello what can i help you with today", "ok let me look into some options for you",
             "api_call thai rome", "what do you think of this option: resto_c", "here it is resto_c_phone"]
RESTO_C = ["resto_c R_cuisine thai", "resto_c R_location rome", "resto_c R_phone resto_c_phone"]


@pytest.fixture(scope="module")
def small_run(small_dialog_run) -> Path:
    """The small dialog run (conftest.small_dialog_run: FOLDER/run, FOLDER/release)."""
    return small_dialog_run


@pytest.fixture(scope="module")
def bot(small_run) -> Chatbot:
    return Chatbot.load(small_run / "run", kb=KnowledgeBase.read(small_run / "release" / "dialog-babi-kb-all.txt"))


@pytest.fixture(scope="module")
def client(bot):
    with TestClient(create_chat_app(bot)) as c:
        yield c


def chat(client, history, turn, **kwargs):
    return client.post("/chat", json={"history": history, "turn": turn}, **kwargs)


def converse(client) -> list[dict]:
    """TURNS through POST /chat, each with the history the previous answer returned; the answers."""
    history, answers = [], []
    for turn in TURNS:
        r = chat(client, history, turn)
        assert r.status_code == 200, r.text
        answers.append(r.json())
        history = r.json()["history"]
    return answers


def assert_books_resto_c(client) -> None:
    """The conversation still gives its bot turns (the server survived whatever came before)."""
    assert [reply["text"] for a in converse(client) for reply in a["replies"]] == BOT_TURNS


# --- the API, in process ---------------------------------------------------------------------------

def test_health_says_a_dialog_server(client, bot):
    assert client.get("/health").json() == {"status": "ok", "kind": "dialog", "model": "1",
                                            "memory_size": bot.cfg.memory_size, "candidates": len(bot.cfg.candidates),
                                            "knowledge_base": True}


def test_a_conversation_through_chat_books_a_table_never_seen_in_training(client, bot, small_run):
    """test_chat's conversation, stateless: each request carries the history the previous one returned. The bot
    turns, results and attention are those of one Chatbot saying the turns in a row."""
    answers = converse(client)
    texts = [[reply["text"] for reply in a["replies"]] for a in answers]
    assert texts == [BOT_TURNS[:1], BOT_TURNS[1:4], BOT_TURNS[4:]]
    api = answers[1]["replies"][1]
    assert api["results"] == RESTO_C and api["unknown_words"] == []
    assert set(api) == {"text", "probability", "unknown_words", "results", "hops"}
    assert len(api["hops"]) == 3
    assert {row["utterance"] for row in api["hops"][0]} >= {"hello", "i'd like thai food in rome"}
    assert answers[2]["history"] == [
        {"speaker": "user", "text": "hello"}, {"speaker": "bot", "text": BOT_TURNS[0]},
        {"speaker": "user", "text": "i'd like thai food in rome"}, {"speaker": "bot", "text": BOT_TURNS[1]},
        {"speaker": "user", "text": "<silence>"}, {"speaker": "bot", "text": BOT_TURNS[2]},
        *({"speaker": "kb", "text": line} for line in RESTO_C),
        {"speaker": "user", "text": "<silence>"}, {"speaker": "bot", "text": BOT_TURNS[3]},
        {"speaker": "user", "text": "the phone number please"}, {"speaker": "bot", "text": BOT_TURNS[4]}]

    one = Chatbot.load(small_run / "run", kb=bot.kb)  # the same turns, said to one bot that keeps the history
    assert [[r.to_dict() for r in one.say(turn)] for turn in TURNS] == [a["replies"] for a in answers]
    assert bot.history == []  # the server's bot is never in a conversation: each request has its own copy
    assert converse(client) == answers  # nor does anything stay from one request to the next


def test_the_memory_is_what_the_client_sends(client):
    """Stateless: a history the client writes itself (here the knowledge base's lines of an earlier call) is
    what the bot reads."""
    history = [{"speaker": "user", "text": "hello"}, {"speaker": "bot", "text": BOT_TURNS[0]},
               {"speaker": "user", "text": "i'd like thai food in rome"}, {"speaker": "bot", "text": BOT_TURNS[1]},
               {"speaker": "user", "text": "<silence>"}, {"speaker": "bot", "text": BOT_TURNS[2]},
               *({"speaker": "kb", "text": line} for line in RESTO_C)]
    r = chat(client, history, "<SILENCE>")
    assert r.status_code == 200, r.text
    assert [reply["text"] for reply in r.json()["replies"]] == [BOT_TURNS[3]]
    read = {row["utterance"] for row in r.json()["replies"][0]["hops"][0]}
    assert set(RESTO_C) <= read
    assert r.json()["history"][:len(history)] == history
    without_history = client.post("/chat", json={"turn": "hello"})  # a new conversation
    assert [reply["text"] for reply in without_history.json()["replies"]] == BOT_TURNS[:1]


def test_unknown_words_are_reported_not_fatal(client):
    r = chat(client, [], "hello zanzibar Hello")
    assert r.status_code == 200, r.text
    assert r.json()["replies"][0]["unknown_words"] == ["zanzibar"]
    assert r.json()["history"][0] == {"speaker": "user", "text": "hello zanzibar hello"}
    history = [{"speaker": "kb", "text": "resto_zz R_phone zz_phone"}]  # unknown words in the memory: read as unknown
    assert chat(client, history, "hello").status_code == 200


def post_ascii(client, fields, path="/chat"):
    """POST ``fields`` as JSON with ASCII escapes (``"\\ud800"``), which httpx's ``json=`` cannot send."""
    return client.post(path, content=json.dumps(fields).encode("ascii"), headers=JSON)


GOOD_HISTORY = [{"speaker": "user", "text": "hello"}, {"speaker": "bot", "text": BOT_TURNS[0]}]


@pytest.mark.parametrize("fields, status, field, words", [
    ({"history": [], "turn": ""}, 400, "turn", ["empty turn"]),
    ({"history": GOOD_HISTORY, "turn": "  \n\t "}, 400, "turn", ["empty turn"]),
    ({"history": []}, 422, "turn", ["missing field: turn"]),
    ({"history": [], "turn": ["hello"]}, 422, "turn", ["turn must be a string"]),
    ({"history": [], "turn": None}, 422, "turn", ["turn must be a string"]),
    ({"history": [], "turn": "a " * 1001}, 413, "turn", ["1001 words", "at most 1000"]),
    ({"history": [], "turn": "hello \ud800"}, 400, "turn", ["turn", "surrogate"]),
    ({"history": "hello", "turn": "hello"}, 422, "history", ["history must be a list"]),
    ({"history": [{"speaker": "user", "text": "hi"}] * 1001, "turn": "hello"}, 413, "history",
     ["1001 entries", "at most 1000"]),
    ({"history": ["hello"], "turn": "hello"}, 422, "history", ["history[0] must be an object"]),
    ({"history": [*GOOD_HISTORY, {"speaker": "me", "text": "hi"}], "turn": "hello"}, 400, "history",
     ["history[2].speaker", "user, bot, kb", "'me'"]),
    ({"history": [{"speaker": "<user>", "text": "hi"}], "turn": "hello"}, 400, "history", ["history[0].speaker"]),
    ({"history": [{"text": "hi"}], "turn": "hello"}, 400, "history", ["history[0].speaker", "null"]),
    ({"history": [{"speaker": "bot", "text": 3}], "turn": "hello"}, 422, "history",
     ["history[0].text must be a string"]),
    ({"history": [{"speaker": "bot"}], "turn": "hello"}, 422, "history", ["history[0].text"]),
    ({"history": [*GOOD_HISTORY, {"speaker": "kb", "text": "x " * 1001}], "turn": "hello"}, 413, "history",
     ["history[2].text", "1001 words"]),
    ({"history": [{"speaker": "user", "text": "hi \udfff"}], "turn": "hello"}, 400, "history",
     ["history[0].text", "surrogate"]),
])
def test_a_bad_chat_request_is_a_4xx_naming_the_field(client, fields, status, field, words):
    body = assert_error(post_ascii(client, fields), status, *words)
    assert body["field"] == field, body


def test_a_turn_over_the_bots_limits_is_413_naming_the_turn(bot):
    small = TestClient(create_chat_app(Chatbot(bot.label, bot.model, bot.params, bot.vocab, bot.kb,
                                               Limits(max_line=50, max_story=3))))
    body = assert_error(chat(small, [], "hello " * 10), 413, "60 characters", "at most 50")
    assert body["field"] == "turn"
    body = assert_error(chat(small, [{"speaker": "user", "text": "hello " * 10}], "hello"), 413, "at most 50")
    assert body["field"] == "history"
    body = assert_error(chat(small, GOOD_HISTORY * 2, "hello"), 413, "4 entries", "at most 3")
    assert body["field"] == "history"
    r = chat(small, GOOD_HISTORY, "i'd like thai food in rome")
    assert r.status_code == 200 and [x["text"] for x in r.json()["replies"]][0] == BOT_TURNS[1]
    assert len(r.json()["history"]) == 3  # over max_story: the most recent entries are kept, as many as it allows
    again = chat(small, r.json()["history"], "<SILENCE>")  # what came back goes back
    assert again.status_code == 200 and again.json()["replies"], again.text


def test_a_bad_body_is_refused_as_answer_refuses_it(client):
    for raw in (b"{", b"", b"\xff\xfe", b"[" * 5000):
        assert_error(client.post("/chat", content=raw, headers=JSON), 400, "malformed JSON")
    assert_error(client.post("/chat", json=["hello"]), 422, "object")
    body = json.dumps({"history": [], "turn": "hello"}).encode()
    for headers in ({}, {"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"},
                    {"content-type": "multipart/form-data; boundary=x"}):
        assert_error(client.post("/chat", content=body, headers=headers), 415, "application/json")
    assert_error(client.post("/chat", content=b" " * (64 * 1024 + 1), headers=JSON), 413, "bytes")
    assert_error(client.get("/chat"), 405)
    assert client.options("/chat", headers={"origin": "https://evil.example",
                                            "access-control-request-method": "POST"}).status_code == 405
    assert_books_resto_c(client)


def test_each_kind_of_server_names_its_own_route(client):
    """A dialog server answers /answer with a 404 naming /chat, a question-answering one /chat with a 404
    naming /answer; neither serves the other's page data."""
    for r in (client.post("/answer", json={"story": ["Mary went home."], "question": "Where is Mary?"}),
              client.get("/answer")):
        assert_error(r, 404, "POST /chat", "dialog model")
    assert_error(client.get("/api/tasks"), 404)

    class Quick:  # a stand-in question answerer
        label, tasks, memory_size = "quick", [1], 50

        def answer(self, story, question):
            from memjax.infer import Answer

            return Answer("office", 1.0, [], [], [("office", 1.0)])

    qa = TestClient(create_app(Quick()))
    assert qa.get("/health").json()["kind"] == "qa"
    for r in (qa.post("/chat", json={"history": [], "turn": "hello"}), qa.get("/chat")):
        assert_error(r, 404, "POST /answer", "dialog models")
    assert qa.post("/answer", json={"story": ["Mary went home."], "question": "Where is Mary?"}).status_code == 200


def test_every_chat_response_carries_the_security_headers(client):
    responses = [client.get("/"), client.get("/static/chat.js"), client.get("/static/page.css"), client.get("/health"),
                 chat(client, [], "hello"), chat(client, [], ""), client.post("/chat", content=b"{}"),
                 client.post("/answer", json={}), client.get("/chat"), client.get("/static/page.js")]
    for r in responses:
        assert_secured(r)
    assert {r.status_code for r in responses} == {200, 400, 404, 405, 415}
    assert "script-src 'self'" in client.get("/").headers["content-security-policy"]


def test_the_chat_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for testid in ("model", "conversation", "turn", "send", "new", "error"):
        assert f'data-testid="{testid}"' in page.text
    assert 'src="static/chat.js"' in page.text and "http://" not in page.text and "https://" not in page.text
    script = client.get("/static/chat.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert 'getJSON("chat"' in script.text and "https://" not in script.text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):  # text stays text
        assert sink not in script.text, sink
    style = client.get("/static/page.css")
    assert ".turn.user" in style.text and "td.weight" in style.text  # the QA page's style, and the chat's


def test_default_kb_is_the_releases_for_tasks_1_to_5(bot, small_run, monkeypatch, tmp_path):
    monkeypatch.setenv("MEMJAX_DIALOG_DATA", str(small_run / "release"))
    assert default_kb(bot).facts == bot.kb.facts
    (tmp_path / "kb.txt").write_text("1 resto_z R_cuisine thai\n")
    assert list(default_kb(bot, tmp_path / "kb.txt").facts) == ["resto_z"]
    monkeypatch.setattr(bot, "label", "6")  # task 6 has no knowledge-base file
    assert default_kb(bot) is None


# --- a real server ---------------------------------------------------------------------------------

@contextlib.contextmanager
def serving(small_run: Path, name: str, *flags: str):
    """``memjax serve`` of the small run in a subprocess (the knowledge base by default from
    $MEMJAX_DIALOG_DATA, the small release), logging to ``small_run/name.log``; its URL. SIGTERM stops it,
    with status 0."""
    with serve_in_process(small_run / "run", None, small_run, *flags, log_name=f"{name}.log",
                          env={"MEMJAX_DIALOG_DATA": str(small_run / "release")}) as url:
        yield url


@pytest.fixture(scope="module")
def server(small_run):
    with serving(small_run, "server") as url:
        yield url


def test_a_real_server_converses(server, small_run):
    with httpx.Client(base_url=server, timeout=60) as http:
        assert http.get("/health").json()["kind"] == "dialog"
        assert_books_resto_c(http)
        assert_error(http.post("/chat", json={"history": [], "turn": ""}), 400, "empty turn")
        assert_error(http.post("/answer", json={"story": [], "question": "Where?"}), 404, "/chat")
        assert_books_resto_c(http)
    log = (small_run / "server.log").read_text()
    assert "memjax serve: dialog model of task 1" in log and "9 restaurants in its knowledge base" in log, log


def test_serve_kb_flag(small_run, task1_run, tmp_path):
    (tmp_path / "kb.txt").write_text("1 resto_c R_cuisine french\n2 resto_c R_location paris\n")
    with serving(small_run, "kb", "--kb", str(tmp_path / "kb.txt")) as url:  # resto_c is no longer thai food in rome
        history = []
        for turn in TURNS[:2]:
            r = httpx.post(url + "/chat", json={"history": history, "turn": turn}, timeout=60)
            history = r.json()["history"]
        assert [x["text"] for x in r.json()["replies"]][:2] == BOT_TURNS[1:3]
        assert r.json()["replies"][1]["results"] == []
    (tmp_path / "bad.txt").write_text("1 resto_a cuisine\n")
    for kb, message in (("nowhere.txt", "nowhere.txt: file not found (--kb)"),
                        ("bad.txt", "bad.txt, line 1: expected 'ID restaurant R_relation value'")):
        bad = subprocess.run([sys.executable, "-m", "memjax", "serve", "--checkpoint", str(small_run / "run"),
                              "--port", str(free_port()), "--kb", str(tmp_path / kb)], capture_output=True, text=True,
                             timeout=120)
        assert bad.returncode == 2 and bad.stderr.startswith("memjax: error:") and message in bad.stderr, bad.stderr
        assert len(bad.stderr.splitlines()) == 1, bad.stderr
    qa = subprocess.run([sys.executable, "-m", "memjax", "serve", "--checkpoint", str(task1_run), "--port",
                         str(free_port()), "--kb", str(tmp_path / "kb.txt")], capture_output=True, text=True,
                        timeout=120)
    assert qa.returncode == 2, qa.stderr
    assert qa.stderr.strip() == (f"memjax: error: --kb: {task1_run} holds no dialog model (the knowledge base is for "
                                 "the api_call of dialog models)"), qa.stderr


# --- the page in a browser -------------------------------------------------------------------------

def say(browser, text: str) -> int:
    """Types ``text`` into the page and sends it with Enter; once the page shows the turn (it adds the turn and
    the bot's replies together), the number of bot turns shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    users = len(browser.find_elements(By.CSS_SELECTOR, '[data-testid="user-turn"]'))
    browser.find_element(By.ID, "turn").send_keys(text + Keys.ENTER)
    page_wait(browser).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="user-turn"]')) > users
        or d.find_element(By.ID, "error").is_displayed())
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text
    return len(browser.find_elements(By.CSS_SELECTOR, '[data-testid="bot-turn"]'))


def bot_texts(browser) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.find_element(By.CSS_SELECTOR, "p.text").text.rsplit(" p=", 1)[0]
            for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="bot-turn"]')]


def test_the_browser_page_books_a_table_and_shows_the_attention(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    page_wait(browser).until(lambda d: "Dialog model of task 1" in d.find_element(By.ID, "model").text)
    for turn, seen in zip(TURNS, (1, 4, 5)):
        assert say(browser, turn) == seen
        assert browser.find_element(By.ID, "turn").get_attribute("value") == ""
    assert bot_texts(browser) == BOT_TURNS
    users = browser.find_elements(By.CSS_SELECTOR, '[data-testid="user-turn"]')
    assert [u.text for u in users] == TURNS
    bots = browser.find_elements(By.CSS_SELECTOR, '[data-testid="bot-turn"]')
    assert all(u.rect["x"] > b.rect["x"] + 50 for u, b in zip(users, bots))  # the user's on the right
    items = browser.find_elements(By.CSS_SELECTOR, "#conversation > li")
    kinds = [i.get_attribute("data-testid") for i in items]
    assert kinds == ["user-turn", "bot-turn", "user-turn", "bot-turn", "bot-turn", "kb", "bot-turn", "user-turn",
                     "bot-turn"]

    kb = browser.find_element(By.CSS_SELECTOR, '[data-testid="kb"] details')
    assert kb.text == "knowledge base: 1 restaurant: resto_c"  # collapsed: the summary alone
    assert not kb.find_element(By.CSS_SELECTOR, "li").is_displayed()
    kb.find_element(By.TAG_NAME, "summary").click()
    assert [li.text for li in kb.find_elements(By.CSS_SELECTOR, "li")] == RESTO_C

    assert not bots[0].find_elements(By.CSS_SELECTOR, '[data-testid="attention"]')  # nothing to read yet
    last = bots[-1].find_element(By.CSS_SELECTOR, '[data-testid="attention"]')
    assert "3 hops: read most" in last.text
    table = last.find_element(By.TAG_NAME, "table")
    assert not table.is_displayed()
    last.find_element(By.TAG_NAME, "summary").click()
    assert table.is_displayed()
    heads = [h.text for h in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert heads == ["Utterance", "Hop 1", "Hop 2", "Hop 3"]
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert 1 < len(rows) <= 6
    for row in rows:
        cells = row.find_elements(By.CSS_SELECTOR, "td.weight")
        assert len(cells) == 3
        for c in cells:
            assert 0.0 <= float(c.get_attribute("data-weight")) <= 1.0
            assert float(c.text) == pytest.approx(float(c.get_attribute("data-weight")), abs=0.006)
    utterances = [row.find_element(By.CSS_SELECTOR, "td.statement").text for row in rows]
    assert set(utterances) <= {*TURNS, *BOT_TURNS, *RESTO_C, "<silence>"}, utterances
    assert "resto_c R_phone resto_c_phone" in utterances  # what the last reply gives
    strongest = table.find_elements(By.CSS_SELECTOR, "td.strongest")
    assert len(strongest) == 3  # one per hop

    browser.find_element(By.ID, "new").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#conversation > li") == []
    assert say(browser, TURNS[0]) == 1  # the bot starts again
    assert bot_texts(browser) == BOT_TURNS[:1]
    browser.find_element(By.ID, "turn").send_keys("   ")
    browser.find_element(By.ID, "send").click()
    page_wait(browser).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "empty turn" in browser.find_element(By.ID, "error").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#conversation > li")) == 2  # nothing added


def test_the_browser_page_shows_the_users_text_as_text(server, browser):
    """Markup typed as a turn is shown as the typed characters, in the conversation and in the heat map of the
    next reply (which reads it), and runs nothing."""
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    page_wait(browser).until(lambda d: "Dialog model" in d.find_element(By.ID, "model").text)
    # a known word first: the reply is a greeting, and the next reply reads a memory of two utterances, both shown
    markup = 'hello <img src=x onerror="document.title=1"> <b>there</b>'
    assert say(browser, markup) >= 1
    user = browser.find_element(By.CSS_SELECTOR, '[data-testid="user-turn"] p.text')
    assert user.text == markup
    assert "<img" in browser.find_element(By.CSS_SELECTOR, '[data-testid="user-turn"] p.note').text
    say(browser, "hello")
    attention = browser.find_elements(By.CSS_SELECTOR, '[data-testid="attention"]')[0]  # the first reply that reads
    attention.find_element(By.TAG_NAME, "summary").click()
    read = [c.text for c in attention.find_elements(By.CSS_SELECTOR, "td.statement")]
    assert markup.lower() in read
    assert not browser.find_elements(By.CSS_SELECTOR, "#conversation img, #conversation b, #error img")
    assert browser.title == "memjax: chat with a memory network"
