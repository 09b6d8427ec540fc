"""Whole models: embeddings, attention stacks and output heads, with token ids from their config.

- :mod:`attention_course.models.rnn_seq2seq` — GRU/LSTM encoder–decoder, plain or Bahdanau
- :mod:`attention_course.models.transformer_seq2seq` — the encoder–decoder Transformer
- :mod:`attention_course.models.gpt` — a GPT-2-style decoder-only language model
- :mod:`attention_course.models.vit` — the Vision Transformer (Dosovitskiy et al., 2020)
- :mod:`attention_course.models.speech` — Listen, Attend and Spell over spectrogram frames
  (Chan et al., 2016), with the Bahdanau decoder of ``rnn_seq2seq``
- :mod:`attention_course.models.rl` — an entity-attention policy and its training
- :mod:`attention_course.models.gat` — graph attention (Veličković et al., 2018)
- :mod:`attention_course.models.bert` — BERT, the encoder-only family (Devlin et al., 2019)
- :mod:`attention_course.models.t5` — T5, the encoder–decoder family with relative position
  bias (Raffel et al., 2020)

The reinforcement-learning environment is :mod:`attention_course.envs` (it needs gymnasium, so
nothing imports it implicitly).
"""
