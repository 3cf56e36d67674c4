"""Generated bAbI-style data of any story length, for benchmarks and scaling experiments.

:func:`single_fact` builds, directly as arrays, task-1-like questions ("where is mary?") over stories
of a chosen number of statements ("mary went to the kitchen."): the answer is the place of the
most recent statement about the person asked, its supporting fact. Stories can be far longer
than bAbI's, so that memory size can be pushed well past 50.
"""

from __future__ import annotations

import numpy as np

from memjax.data.dataset import Dataset, Split, Vocab

PEOPLE = ("mary", "john", "daniel", "sandra", "fred", "bill", "julie", "emma", "jeff", "yann",
          "jason", "antoine", "sumit", "greg", "lily", "brian", "bernhard", "winona", "gertrude", "jessica")
PLACES = ("kitchen", "garden", "office", "bathroom", "hallway", "bedroom", "park", "cinema", "school",
          "store", "library", "beach", "station", "museum", "church", "bank", "farm", "forest", "harbor", "market")
VERBS = ("went", "moved", "travelled", "journeyed")


def single_fact(n_train: int, n_valid: int, n_test: int, story_length: int, people: int = 10, places: int = 10,
                memory_size: int | None = None, seed: int = 0) -> Dataset:
    """A single-supporting-fact dataset with stories of ``story_length`` statements.

    Every question has its own story of exactly ``story_length`` statements, each "<person> <verb> to
    the <place>", drawn uniformly; the person asked about appears in the story.

    Args:
        n_train, n_valid, n_test: questions per split.
        story_length: statements per story (at least 1).
        people, places: how many of each to draw from (at most 20).
        memory_size: slots kept (default ``story_length``).
        seed: NumPy seed.

    Returns:
        a :class:`Dataset` named ``"generated single fact"`` (task 1).
    """
    if story_length < 1 or not (1 <= people <= len(PEOPLE)) or not (1 <= places <= len(PLACES)):
        raise ValueError("story_length must be positive; people and places between 1 and 20")
    memory_size = memory_size or story_length
    who, where = PEOPLE[:people], PLACES[:places]
    vocab = Vocab([*who, *where, *VERBS, "to", "the", "where", "is"])
    # the distinct sentences: every (person, verb, place); row 0 is the empty sentence
    p, v, l = np.meshgrid(np.arange(people), np.arange(len(VERBS)), np.arange(places), indexing="ij")
    p, v, l = p.ravel(), v.ravel(), l.ravel()
    sentences = np.zeros((len(p) + 1, 5), np.int32)
    sentences[1:] = np.stack([np.array([vocab.id(w) for w in who])[p], np.array([vocab.id(w) for w in VERBS])[v],
                              np.full_like(p, vocab.id("to")), np.full_like(p, vocab.id("the")),
                              np.array([vocab.id(w) for w in where])[l]], axis=1)
    rng = np.random.default_rng(seed)

    def split(n: int) -> Split:
        rows = rng.integers(1, len(sentences), size=(n, story_length))  # oldest first
        recent = rows[:, ::-1]  # slot 0 = most recent
        person = p[recent - 1]
        asked = person[np.arange(n), rng.integers(0, story_length, size=n)]  # someone in the story
        slot = np.argmax(person == asked[:, None], axis=1)  # the most recent statement about them
        answer = np.array([vocab.id(w) for w in where])[l[recent[np.arange(n), slot] - 1]]
        query = np.stack([np.full(n, vocab.id("where")), np.full(n, vocab.id("is")),
                          np.array([vocab.id(w) for w in who])[asked]], axis=1)
        story = np.zeros((n, memory_size), np.int32)
        keep = min(memory_size, story_length)
        story[:, :keep] = recent[:, :keep]
        supporting = np.where(slot < memory_size, slot, -1)[:, None]
        return Split(story, query.astype(np.int32), answer.astype(np.int32), supporting.astype(np.int32),
                     np.ones(n, np.int32))

    return Dataset("generated single fact", (1,), vocab, sentences, split(n_train), split(n_valid), split(n_test),
                   memory_size=memory_size)
