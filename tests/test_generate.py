import numpy as np
import pytest

from memjax.data.generate import single_fact


def test_single_fact_answers_are_the_last_place_of_the_person_asked():
    ds = single_fact(40, 5, 5, story_length=30, people=4, places=6, seed=3)
    words = ds.vocab.words
    assert ds.train.story.shape == (40, 30) and np.all(ds.train.story > 0)
    for i in range(40):
        person = words[ds.train.query[i, 2]]
        statements = [[words[w] for w in ds.sentences[row] if w] for row in ds.train.story[i]]  # most recent first
        about = [s for s in statements if s[0] == person]
        assert about, "the person asked about appears in the story"
        assert words[ds.train.answer[i]] == about[0][-1]
        assert statements[ds.train.supporting[i, 0]] == about[0]
        assert about[0][1:4][1:] == ["to", "the"]


def test_single_fact_memory_smaller_than_the_story_keeps_the_most_recent():
    full = single_fact(20, 1, 1, story_length=50, seed=1)
    cut = single_fact(20, 1, 1, story_length=50, memory_size=10, seed=1)
    np.testing.assert_array_equal(cut.train.story, full.train.story[:, :10])
    np.testing.assert_array_equal(cut.train.answer, full.train.answer)
    assert np.all((cut.train.supporting == -1) == (full.train.supporting >= 10))


def test_single_fact_rejects_bad_sizes():
    with pytest.raises(ValueError):
        single_fact(1, 1, 1, story_length=0)
    with pytest.raises(ValueError):
        single_fact(1, 1, 1, story_length=5, people=21)


def _simulate(story, query):
    """An independent reading of a generated story: where people are, who holds what, where things were."""
    at, holder, seen = {}, {}, {}
    for s in story:
        person = s[0]
        if s[1] == "picked":
            holder[s[-1]] = person
            seen[s[-1]] = [at[person]]
        elif s[1] == "dropped":
            holder.pop(s[-1], None)
        else:
            at[person] = s[-1]
            for thing, h in holder.items():
                if h == person:
                    seen[thing].append(s[-1])
    if query[:2] == ("where", "is") and len(query) == 3:
        return at[query[2]]
    if query[:2] == ("where", "is"):
        return at[holder[query[3]]]
    thing, now = query[3], query[-1]
    places = [p for i, p in enumerate(seen[thing]) if i == 0 or p != seen[thing][i - 1]]
    assert places[-1] == now
    return places[-2]


@pytest.mark.parametrize("kind", ["single", "two", "three"])
def test_generated_questions_are_answered_by_their_story_and_round_trip_through_babi_text(kind, tmp_path):
    from memjax.data.babi import parse_file
    from memjax.data.generate import KINDS, generate, write_babi

    qs = generate(kind, 60, 40, people=4, places=6, objects=3, distractors=2, seed=5)
    for q in qs:
        assert len(q.story) == 40 and len(q.supporting) == KINDS[kind]
        facts = [q.story[i] for i in q.supporting]
        assert len({f[0] for f in facts}) == 1  # all about one person: the one asked, or the holder
        assert kind == "single" or ("picked", "up", "the", q.query[3]) in [f[1:] for f in facts]
        assert _simulate(q.story, q.query) == q.answer
        assert all(q.story[i][0] not in ("fred", "bill") or q.story[i][1] not in ("picked", "dropped")
                   for i in range(len(q.story)))  # distractors carry nothing
    path = tmp_path / f"{kind}.txt"
    write_babi(qs, path)
    back = parse_file(path)
    assert [(b.story, b.query, b.answer, b.supporting) for b in back] == [(q.story, q.query, q.answer, q.supporting)
                                                                            for q in qs]


def test_generate_command_writes_a_file_memjax_trains_on(tmp_path):
    from test_cli import run

    r = run(["generate", "--kind", "two", "--questions", "50", "--length", "120", "--out", str(tmp_path / "g.txt")])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g.txt").read_text().count("?") == 50
    bad = run(["generate", "--kind", "four", "--out", str(tmp_path / "x.txt")])
    assert bad.returncode == 2
