"""Whole models: embeddings, attention stacks and output heads, with token ids from their config.

- :mod:`attention_course.models.rnn_seq2seq` — GRU/LSTM encoder–decoder, plain or Bahdanau
- :mod:`attention_course.models.transformer_seq2seq` — the encoder–decoder Transformer
"""
