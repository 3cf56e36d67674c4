"""Generated bAbI-style data of any story length, for benchmarks and scaling experiments.

:func:`single_fact` builds, directly as arrays, task-1-like questions ("where is mary?") over stories
of a chosen number of statements ("mary went to the kitchen."): the answer is the place of the
most recent statement about the person asked, its supporting fact. Stories can be far longer
than bAbI's, so that memory size can be pushed well past 50.
"""

from __future__ import annotations

import numpy as np

from memjax.data.babi import Question
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


OBJECTS = ("football", "apple", "milk", "book", "key", "box", "ball", "pen", "cup", "hat")
KINDS = {"single": 1, "two": 2, "three": 3}


def generate(kind: str, n_questions: int, story_length: int, people: int = 4, places: int = 6, objects: int = 3,
             distractors: int = 0, seed: int = 0) -> list[Question]:
    """bAbI-style questions over stories of exactly ``story_length`` statements.

    Kinds (as bAbI tasks 1-3):

    - ``single``: "mary went to the kitchen." ... "where is mary?" (1 supporting fact);
    - ``two``: people also pick up and drop objects; "where is the football?" is answered by the
      holder's last move (2 supporting facts: the pick-up and the move);
    - ``three``: "where was the football before the office?" asks for the place the object was in
      before it last arrived at its current place (3 supporting facts: the pick-up and two moves).

    ``distractors`` more people move about but are never asked about and never carry anything.
    Every question has its own story; the answer is always determined by the story.

    Returns:
        :class:`~memjax.data.babi.Question` records (write them with :func:`write_babi`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: use {', '.join(KINDS)}")
    if story_length < 3 or not (1 <= people and people + distractors <= len(PEOPLE)) \
            or not (2 <= places <= len(PLACES)) or not (1 <= objects <= len(OBJECTS)):
        raise ValueError("story_length >= 3; people + distractors <= 20; 2 <= places <= 20; 1 <= objects <= 10")
    rng = np.random.default_rng(seed)
    out: list[Question] = []
    while len(out) < n_questions:
        q = _one(kind, story_length, PEOPLE[:people], PEOPLE[people:people + distractors], PLACES[:places],
                 OBJECTS[:objects], rng)
        if q is not None:
            out.append(q)
    return out


def _one(kind, length, who, noise, where, things, rng):
    """One story and question, or None when the story drawn cannot ask this kind of question."""
    story: list[tuple[str, ...]] = []
    at = {}  # person -> (place, statement index)
    holder = {}  # object -> (person, pick-up index)
    history = {o: [] for o in things}  # object -> [(place, index of the statement that put it there)]
    for _ in range(length):
        roll = rng.random()
        if noise and roll < 0.25:
            person, place = noise[rng.integers(len(noise))], where[rng.integers(len(where))]
            story.append((person, VERBS[rng.integers(len(VERBS))], "to", "the", place))
            continue
        person = who[rng.integers(len(who))]
        free = [o for o in things if o not in holder]
        mine = [o for o in things if holder.get(o, (None,))[0] == person]
        if kind != "single" and person in at and roll > 0.75 and (free or mine):
            if mine and (not free or rng.random() < 0.5):
                thing = mine[rng.integers(len(mine))]
                del holder[thing]
                story.append((person, "dropped", "the", thing))
            else:
                thing = free[rng.integers(len(free))]
                holder[thing] = (person, len(story))
                story.append((person, "picked", "up", "the", thing))
                history[thing].append((at[person][0], at[person][1]))
            continue
        place = where[rng.integers(len(where))]
        at[person] = (place, len(story))
        for thing, (h, _) in holder.items():
            if h == person:
                history[thing].append((place, len(story)))
        story.append((person, VERBS[rng.integers(len(VERBS))], "to", "the", place))
    if kind == "single":
        asked = [p for p in who if p in at]
        if not asked:
            return None
        person = asked[rng.integers(len(asked))]
        return Question(tuple(story), ("where", "is", person), at[person][0], (at[person][1],), 1)
    held = [o for o in things if o in holder and holder[o][0] in at]
    if kind == "two":
        if not held:
            return None
        thing = held[rng.integers(len(held))]
        person, picked = holder[thing]
        place, moved = at[person]
        return Question(tuple(story), ("where", "is", "the", thing), place, tuple(sorted({picked, moved})), 2)
    # three: the object's last two distinct places while carried
    candidates = []
    for thing in held:
        places_seen = [p for p in history[thing] if p[1] >= holder[thing][1]]
        if len(places_seen) >= 2 and places_seen[-1][0] != places_seen[-2][0]:
            candidates.append((thing, places_seen[-2], places_seen[-1]))
    if not candidates:
        return None
    thing, before, now = candidates[rng.integers(len(candidates))]
    support = tuple(sorted({holder[thing][1], before[1], now[1]}))
    return Question(tuple(story), ("where", "was", "the", thing, "before", "the", now[0]), before[0], support, 3)


def write_babi(questions: list[Question], path) -> None:
    """Writes questions in the bAbI text format, each with its own story numbered from 1."""
    with open(path, "w", encoding="utf-8") as f:
        for q in questions:
            for i, s in enumerate(q.story, start=1):
                f.write(f"{i} {' '.join(s).capitalize()}.\n")
            ids = " ".join(str(i + 1) for i in q.supporting)
            f.write(f"{len(q.story) + 1} {' '.join(q.query).capitalize()}?\t{q.answer}\t{ids}\n")
