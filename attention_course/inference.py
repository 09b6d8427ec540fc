r"""Autoregressive generation with an explicit key–value cache (Chapter 8).

:func:`generate` extends prompts token by token with the course's :class:`~attention_course.
models.gpt.GPT`. With ``use_cache=True`` the first step runs the whole prompt and keeps every
block's keys and values (a :class:`KVCache`); each later step feeds only the newest token and
appends its keys and values. With ``use_cache=False`` every step runs the whole sequence again.
Both give the same tokens, and logits equal to float rounding — the cache changes the cost, not
the function: step ``t`` costs ``O(t)`` attention work instead of ``O(t^2)``, and the
projections and MLPs run on one token instead of ``t``.

**Prompts of different lengths** are batched left-padded: ``attention_mask`` ``(B, T)`` marks
the real tokens (``True``) and the padding before them (``False``). Padding is never attended
to, and positions count real tokens only, so a left-padded prompt gives the same continuation
as the same prompt alone.

The cache is a value passed in and returned (:meth:`GPT.forward_with_cache`), never state kept
inside the model, so a step is a pure function ``(tokens, past) → (logits, present)``.

Shape legend: ``B`` batch, ``T`` prompt length, ``N`` new tokens, ``V`` vocabulary, ``Hkv``
key/value heads, ``P`` cached positions, ``Dh`` per-head size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attention_course._checks import check_bool, check_float, check_generator, check_int
from attention_course.models.gpt import GPT

__all__ = ["KVCache", "generate", "next_token"]


@dataclass(frozen=True)
class KVCache:
    """Every block's keys and values of the positions seen so far: ``layers[l] = (k, v)``,
    each ``(B, Hkv, P, Dh)``. Returned by one step and passed to the next."""

    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    @property
    def length(self) -> int:
        """``P``, the number of cached positions."""
        return self.layers[0][0].shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache: ``2 · N · B · Hkv · P · Dh`` elements."""
        return sum(k.nbytes + v.nbytes for k, v in self.layers)


def next_token(logits: torch.Tensor, *, temperature: float = 0.0, top_k: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose the next token from ``logits`` ``(B, V)`` → ``(B,)``.

    ``temperature=0``: greedy (the argmax). Otherwise sample from
    ``softmax(logits / temperature)``, restricted to the ``top_k`` most likely tokens when
    ``top_k`` is given, drawing from ``generator``.
    """
    temperature = _check_sampling(temperature, top_k, generator)
    if temperature == 0.0:
        return logits.argmax(dim=-1)  # (B,)
    scores = logits / temperature  # (B, V)
    if top_k is not None and top_k < scores.shape[-1]:
        kth = scores.topk(top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = scores.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]  # (B,)


def _check_sampling(temperature, top_k, generator) -> float:
    temperature = check_float("temperature", temperature, minimum=0.0)
    if top_k is not None:
        check_int("top_k", top_k, minimum=1)
    check_generator("generator", generator)
    return temperature


def _check_prompt(model, tokens, max_new_tokens, attention_mask):
    if not isinstance(model, GPT):
        raise TypeError(f"model must be the course's GPT, got {type(model).__name__}")
    check_int("max_new_tokens", max_new_tokens, minimum=1)
    model.check_inputs(tokens)
    if tokens.shape[1] + max_new_tokens > model.config.max_len:
        raise ValueError(f"the prompt has {tokens.shape[1]} tokens and max_new_tokens="
                         f"{max_new_tokens}: more than the model's max_len = "
                         f"{model.config.max_len}")
    if attention_mask is not None:
        model.check_attention_mask(attention_mask, tokens.shape)


@torch.no_grad()
def generate(model: GPT, tokens: torch.Tensor, max_new_tokens: int, *, use_cache: bool = True,
             temperature: float = 0.0, top_k: int | None = None,
             generator: torch.Generator | None = None,
             attention_mask: torch.Tensor | None = None, return_logits: bool = False):
    """Continue the prompts ``tokens`` ``(B, T)`` by ``max_new_tokens`` tokens → ``(B, T + N)``
    (and, with ``return_logits=True``, the logits each new token was chosen from ``(B, N, V)``).

    ``use_cache``: decode with a :class:`KVCache` (one new token per step) or re-run the whole
    sequence at every step. ``temperature``, ``top_k``, ``generator``: see :func:`next_token`
    (``temperature=0``, the default, is greedy). ``attention_mask`` ``(B, T)`` bool: ``False``
    for left padding of shorter prompts (``None``: every token is real).
    """
    _check_prompt(model, tokens, max_new_tokens, attention_mask)
    check_bool("use_cache", use_cache)
    check_bool("return_logits", return_logits)
    _check_sampling(temperature, top_k, generator)
    mask = attention_mask  # (B, t) or None: no padding
    past, new_logits = None, []
    for _ in range(max_new_tokens):
        if use_cache and past is not None:  # only the newest token; the cache has the rest
            logits, layers = model.forward_with_cache(tokens[:, -1:], past.layers,
                                                      attention_mask=mask)
        else:  # the whole sequence (the first step of a cached run, or every uncached one)
            logits, layers = model.forward_with_cache(tokens, attention_mask=mask)
        past = KVCache(tuple(layers)) if use_cache else None
        last = logits[:, -1]  # (B, V)
        new_logits.append(last)
        chosen = next_token(last, temperature=temperature, top_k=top_k, generator=generator)
        tokens = torch.cat([tokens, chosen[:, None]], dim=1)  # (B, t + 1)
        if mask is not None:  # the new token is real
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    if return_logits:
        return tokens, torch.stack(new_logits, dim=1)  # (B, T + N), (B, N, V)
    return tokens
