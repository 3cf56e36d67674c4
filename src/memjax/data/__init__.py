"""bAbI parsing, vocabulary and vectorisation (NumPy, outside jit)."""

from memjax.data.babi import DataError, Question, parse_file, parse_lines, parse_tasks, tokenize, words
from memjax.data.dataset import Dataset, Split, Vocab, load_babi, vectorize

__all__ = ["DataError", "Question", "parse_file", "parse_lines", "parse_tasks", "tokenize", "words",
           "Dataset", "Split", "Vocab", "load_babi", "vectorize"]
