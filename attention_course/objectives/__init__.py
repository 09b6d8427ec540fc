"""Pre-training objectives (Chapter 10): what each model family is trained to predict.

- :mod:`attention_course.objectives.mlm` — BERT's masked language modelling (80/10/10)
- :mod:`attention_course.objectives.span_corruption` — T5's span corruption with sentinels

The causal language-model loss of GPT is :func:`attention_course.metrics.next_token_loss`.
"""
