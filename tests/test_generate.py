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
