"""POST /answer fuzzed with Hypothesis: whatever the body, a 200 answer or a 4xx with a one-line JSON error; never
a 500, never an exception.

Each test tries up to 100 bodies in the default run (profile ``memjax`` in tests/conftest.py);
``MEMJAX_HYPOTHESIS_PROFILE=long`` up to 10,000. The model is an untrained MemN2N of bAbI task 1
(what it answers is not the question here; that every request is answered or refused is).
"""

import json
import math
import warnings

import pytest

pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis: pip install 'memjax[dev]'")
pytest.importorskip("starlette", reason="memjax serve needs starlette: pip install 'memjax[serve]'")
pytest.importorskip("httpx", reason="the serve tests need httpx (Starlette's TestClient)")

from hypothesis import event, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: E402

from memjax.infer import Answerer  # noqa: E402
from memjax.serve import create_app  # noqa: E402
from bounded import bounded  # noqa: E402  (tests/bounded.py: the memory bound of every call fuzzed)

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def client(data_root):
    """The API over an untrained MemN2N (dim 12) of bAbI-1k task 1, built in this process."""
    import jax

    from memjax.data.dataset import load_babi
    from memjax.models import FAMILIES
    from memjax.train.protocol import build_configs

    ds = load_babi([1], "en", str(data_root), 50)[0]
    mcfg, _ = build_configs("memn2n", ds, False, {"dim": 12}, {})
    model = FAMILIES["memn2n"][0](mcfg)
    answerer = Answerer("1", model, model.init(jax.random.key(0)), ds.vocab, ds.memory_size, [1])
    with TestClient(create_app(answerer)) as c:  # an exception escaping the app fails the test
        yield c


# text: any characters, and often the ones that break things (lone surrogates, controls, line and paragraph
# separators, a byte order mark, right-to-left override, non-BMP) or the model's own words
SPECIAL = ["\ud800", "\udbff", "\udc00", "\udfff", "\x00", "\x1b", "\x7f", "\r", "\n", "\t", "\x0b", "\x0c",
           "\u2028", "\u2029", "\x85", "\ufeff", "\u202e", "\U0001F600", "\U0001D510", "\uffff", "\u0130", "\u00df",
           "<img src=x onerror=alert(1)>", "\\", '"']
WORDS = ["Mary", "went", "to", "the", "office", "Where", "is", "?", ".", " ", "John", "kitchen"]
texts = st.lists(st.one_of(st.characters(), st.sampled_from(SPECIAL), st.sampled_from(WORDS)),
                 max_size=40).map("".join)
numbers = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(min_value=-10**300, max_value=10**300))
values = st.recursive(st.one_of(st.none(), st.booleans(), numbers, texts),
                      lambda inner: st.lists(inner, max_size=6) | st.dictionaries(texts, inner, max_size=6),
                      max_leaves=30)
stories = st.one_of(st.lists(texts, max_size=60), texts, values, st.lists(values, max_size=5))
requests = st.one_of(
    st.builds(lambda extra, fields: {**extra, **fields}, st.dictionaries(texts, values, max_size=3),
              st.fixed_dictionaries({}, optional={"story": stories, "question": st.one_of(texts, values)})),
    st.fixed_dictionaries({"story": st.one_of(st.lists(texts, max_size=60), texts), "question": texts}))  # to the model
# JSON that json.dumps cannot write: numbers past Python's 4300 digits, huge exponents, deep nesting, UTF-16, a
# byte order mark, a surrogate's three bytes, a repeated key
RAW = [b'{"story": [], "question": ' + b"9" * 5000 + b"}", b'{"story": ["a"], "question": "a", "n": 1e999999}',
       b'{"story": [-1e-999999], "question": "Where?"}', b"[" * 30000 + b"]" * 30000,
       b'{"story": ' + b"[" * 20000 + b"]" * 20000 + b', "question": "Where is Mary?"}',
       '{"story": ["Mary went to the office."], "question": "Where is Mary?"}'.encode("utf-16"),
       b'\xef\xbb\xbf{"story": ["Mary went to the office."], "question": "Where is Mary?"}',
       b'{"story": ["Mary went to the \xed\xa0\x80 office."], "question": "Where is Mary?"}',
       b'{"story": "Mary went to the office.", "question": "Where is Mary?", "story": 7}', b"NaN", b"null", b""]


def encoded(value, ascii_only: bool) -> bytes:
    """``value`` as JSON; lone surrogates as ``\\ud800`` escapes, or as their three bytes (invalid UTF-8, which
    ``json.loads`` decodes back to a lone surrogate)."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def assert_answered_or_refused(response, fields=None) -> None:
    event(f"status {response.status_code}")  # the outcomes' spread: pytest --hypothesis-show-statistics
    assert response.status_code == 200 or 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", response.headers
    assert "\n" not in response.text, response.text  # one line
    body = response.json()
    if response.status_code != 200:
        assert set(body) <= {"error", "field"} and isinstance(body["error"], str) and body["error"], body
        return
    assert isinstance(body["answer"], str) and body["answer"]
    assert math.isfinite(body["probability"]) and -1e-6 <= body["probability"] <= 1 + 1e-6, body
    story = fields.get("story") if isinstance(fields, dict) else None
    if isinstance(story, list):  # the statements echoed back are the ones sent, at their indices
        for hop in body["hops"]:
            assert all(row["sentence"] == story[row["index"]] for row in hop), (hop, story)


@given(requests, st.booleans())
def test_any_json_body_is_answered_or_refused(client, fields, ascii_only):
    body = encoded(fields, ascii_only)
    with bounded():
        response = client.post("/answer", content=body, headers={"content-type": "application/json"})
    # compared with what the server reads: JSON joins the escapes "\\ud800\\udc00" into one character, U+10000
    assert_answered_or_refused(response, json.loads(body))


@given(st.one_of(st.sampled_from(RAW), st.binary(max_size=300), values.map(lambda v: encoded(v, True))),
       st.sampled_from(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON;x=1", "text/plain",
                        "application/x-www-form-urlencoded", "multipart/form-data", "", "application/json;"]))
def test_any_bytes_of_any_type_are_answered_or_refused(client, raw, content_type):
    headers = {"content-type": content_type} if content_type else {}
    with bounded():
        response = client.post("/answer", content=raw, headers=headers)
    assert_answered_or_refused(response)
    if not content_type.lower().startswith("application/json"):
        assert response.status_code == 415
