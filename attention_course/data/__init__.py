"""Data for the course's experiments: the token vocabulary and synthetic tasks.

- :mod:`attention_course.data.vocab` — special token ids (``PAD``, ``BOS``, ``EOS``) and sizes
- :mod:`attention_course.data.seq2seq` — copy / reverse / sort tasks as padded batches
- :mod:`attention_course.data.languages` — synthetic languages with ground truth (Chapter 6):
  repeated random sequences, balanced brackets, words in meaning classes
- :mod:`attention_course.data.retrieval` — associative recall, a long-range retrieval task
  with ground truth (Chapter 7)
- :mod:`attention_course.data.speech` — synthetic utterances of tones and chirps with their
  symbols and time spans, and their log spectrograms (Chapter 9)
"""

from attention_course.data.seq2seq import TASKS, Seq2SeqBatch, make_batch
from attention_course.data.vocab import BOS, EOS, FIRST_SYMBOL, PAD, vocab_size

__all__ = ["PAD", "BOS", "EOS", "FIRST_SYMBOL", "vocab_size", "TASKS", "Seq2SeqBatch",
           "make_batch"]

from attention_course.data.languages import (  # noqa: E402 - appended after the task exports
    BracketSequences,
    ClassSequences,
    RepeatedSequences,
    bracket_sequences,
    class_sequences,
    repeated_sequences,
)

__all__ += ["RepeatedSequences", "repeated_sequences", "BracketSequences", "bracket_sequences",
            "ClassSequences", "class_sequences"]

from attention_course.data.retrieval import (  # noqa: E402 - appended after the task exports
    AssociativeRecall,
    associative_recall,
)

__all__ += ["AssociativeRecall", "associative_recall"]

from attention_course.data.speech import (  # noqa: E402 - appended after the task exports
    SpeechBatch,
    log_spectrogram,
    speech_batch,
)

__all__ += ["SpeechBatch", "speech_batch", "log_spectrogram"]
