r"""An entity-attention policy for reinforcement learning over a *set* of entities, and a small
actor-critic (REINFORCE with a learned baseline) to train it.

The observation is a padded set of entity feature vectors ``(B, M, F)`` with a mask
``(B, M)`` (``True`` = a real entity); entity 0 is the agent. The policy::

    e       = LN(MLP(entities))                          (B, M, D)  every entity embedded alike
    q       = e[:, :1]                                   (B, 1, D)  the agent asks
    c, w    = MultiHeadAttention(q, e, e, mask_objects)  (B, 1, D), (B, H, 1, M)
    h       = MLP([c, q])                                (B, D)
    logits  = W_pi h   (B, A),      value = w_v h   (B,)

The agent's query attends over the *other* real entities: the key mask is the padding mask
with the agent's own column switched off, so the weights ``(B, H, M)`` are exactly 0 on the
agent and on padding. The attention is the course's
:class:`~attention_course.multihead.MultiHeadAttention`; nothing here knows gymnasium.

**Environments** are duck-typed batched environments (e.g.
:class:`attention_course.envs.CueGridVec`): attributes ``num_envs``, ``max_steps``;
``reset(generator)`` → ``(entities, mask)``; ``step(actions (B,))`` → ``(entities, mask,
reward (B,), terminated (B,), truncated (B,))``; an episode that has ended stays ended until
the next ``reset``.

**Training** (:func:`train_policy`): each update plays ``num_envs`` episodes to the end,
computes the discounted return-to-go :math:`G_t = \sum_{s \ge t} \gamma^{s-t} r_s` of every
step and minimises

.. math::
    -\overline{(G_t - V(s_t))\,\log \pi(a_t \mid s_t)}
    + c_V\,\overline{(G_t - V(s_t))^2} - c_H\,\overline{H[\pi(\cdot \mid s_t)]}

over the steps each episode was alive (the advantage is not differentiated, and with
``normalize=True`` it is standardised over the batch): REINFORCE with a learned baseline
(Williams, 1992), the value head being the critic.

Shape legend: ``B`` episodes, ``M`` entity slots, ``F`` features, ``D`` = ``d_model``, ``H``
heads, ``A`` actions, ``T`` steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from attention_course._checks import (
    check_bool,
    check_float,
    check_generator,
    check_int,
    check_tensor,
)
from attention_course.multihead import MultiHeadAttention

__all__ = ["EntityAttentionPolicy", "Rollout", "RLHistory", "rollout", "evaluate_policy",
           "train_policy", "discounted_returns"]


class EntityAttentionPolicy(nn.Module):
    """The agent's query attends over the entities; an actor head and a critic head read the
    result.

    ``EntityAttentionPolicy(num_features, num_actions, *, d_model=32, num_heads=1)``.
    ``forward(entities (B, M, F), mask (B, M) bool, *, need_weights=False)`` →
    ``(logits (B, A), value (B,), weights (B, H, M) or None)``; see the module docstring.
    """

    def __init__(self, num_features: int, num_actions: int, *, d_model: int = 32,
                 num_heads: int = 1):
        super().__init__()
        check_int("num_features", num_features, minimum=1)
        check_int("num_actions", num_actions, minimum=1)
        check_int("d_model", d_model, minimum=1)
        check_int("num_heads", num_heads, minimum=1)
        self.num_features, self.num_actions = num_features, num_actions
        self.embed = nn.Sequential(nn.Linear(num_features, d_model), nn.ReLU(),
                                   nn.Linear(d_model, d_model), nn.LayerNorm(d_model))
        self.attn = MultiHeadAttention(d_model, num_heads)
        self.body = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.ReLU())
        self.policy_head = nn.Linear(d_model, num_actions)
        self.value_head = nn.Linear(d_model, 1)

    def check_inputs(self, entities, mask) -> None:
        """Raise unless ``entities`` is ``(B, M, num_features)`` floating point (``M >= 1``)
        and ``mask`` a ``(B, M)`` boolean tensor whose column 0 (the agent) is ``True``."""
        check_tensor("entities", entities, ndim=3, floating=True)
        B, M, F = entities.shape
        if F != self.num_features or M < 1:
            raise ValueError(f"entities must have shape (B, M >= 1, {self.num_features}), got "
                             f"{tuple(entities.shape)}")
        check_tensor("mask", mask, ndim=2, dtype=torch.bool)
        if tuple(mask.shape) != (B, M):
            raise ValueError(f"mask must have shape (B, M) = ({B}, {M}) like entities, got "
                             f"{tuple(mask.shape)}")
        if B and not bool(mask[:, 0].all()):
            raise ValueError("mask[:, 0] must be True: entity 0 is the agent, whose query "
                             "attends over the others")

    def forward(self, entities: torch.Tensor, mask: torch.Tensor, *,
                need_weights: bool = False):
        """``entities`` ``(B, M, F)``, ``mask`` ``(B, M)`` (``True`` = real) →
        ``(logits (B, A), value (B,), weights (B, H, M) or None)``."""
        self.check_inputs(entities, mask)
        check_bool("need_weights", need_weights)
        e = self.embed(entities)  # (B, M, D)
        query = e[:, :1]  # (B, 1, D): the agent
        keys = mask.clone()
        keys[:, 0] = False  # the agent looks at the others, never at itself
        context, weights = self.attn(query, e, e, keys[:, None, :],
                                     need_weights=need_weights)  # (B, 1, D), (B, H, 1, M)
        h = self.body(torch.cat((context, query), dim=-1)[:, 0])  # (B, D)
        logits = self.policy_head(h)  # (B, A)
        value = self.value_head(h)[:, 0]  # (B,)
        return logits, value, (weights[:, :, 0] if need_weights else None)  # (B, H, M)


@dataclass
class Rollout:
    """One batch of episodes, step-major: ``log_probs``, ``entropy``, ``values``, ``rewards``
    and ``alive`` (the episode had not ended before the step) are ``(T, B)``; ``returns``
    ``(B,)`` is each episode's undiscounted return. ``log_probs``, ``entropy`` and ``values`` are
    ``None`` for the random policy."""

    rewards: torch.Tensor
    alive: torch.Tensor
    returns: torch.Tensor
    log_probs: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    values: torch.Tensor | None = None


def _check_env(env) -> None:
    for name in ("num_envs", "num_actions", "max_steps", "reset", "step"):
        if not hasattr(env, name):
            raise TypeError(f"env must be a batched environment with num_envs, max_steps, "
                            f"reset(generator) and step(actions); {type(env).__name__} has no "
                            f"{name!r}")


def rollout(policy: EntityAttentionPolicy | None, env, generator: torch.Generator, *,
            greedy: bool = False) -> Rollout:
    """Play ``env.num_envs`` episodes to their end (at most ``env.max_steps`` steps).

    Actions are sampled from the policy with ``generator`` (episodes are drawn with it too), or
    its most likely action with ``greedy=True``; ``policy=None`` is the uniformly random policy.
    Gradients flow through ``log_probs``, ``entropy`` and ``values`` unless the caller is
    under ``torch.no_grad()``."""
    if policy is not None and not isinstance(policy, EntityAttentionPolicy):
        raise TypeError(f"policy must be an EntityAttentionPolicy or None (random), got "
                        f"{type(policy).__name__}")
    _check_env(env)
    check_generator("generator", generator)
    check_bool("greedy", greedy)
    entities, mask = env.reset(generator)
    B = env.num_envs
    alive = torch.ones(B, dtype=torch.bool)
    steps = {"log_probs": [], "entropy": [], "values": [], "rewards": [], "alive": []}
    for _ in range(env.max_steps):
        if policy is None:
            actions = torch.randint(env.num_actions, (B,), generator=generator)  # (B,)
        else:
            logits, value, _ = policy(entities, mask)  # (B, A), (B,)
            log_p = torch.log_softmax(logits, dim=-1)  # (B, A)
            if greedy:
                actions = logits.argmax(dim=-1)
            else:
                actions = torch.multinomial(log_p.exp().detach(), 1, generator=generator)[:, 0]
            steps["log_probs"].append(log_p.gather(1, actions[:, None])[:, 0])  # (B,)
            steps["entropy"].append(-(log_p.exp() * log_p).sum(-1))  # (B,)
            steps["values"].append(value)
        entities, mask, reward, terminated, truncated = env.step(actions)
        steps["rewards"].append(reward * alive)
        steps["alive"].append(alive)
        alive = alive & ~(terminated | truncated)
        if not bool(alive.any()):
            break
    out = {name: torch.stack(v) for name, v in steps.items() if v}  # (T, B) each
    return Rollout(returns=out["rewards"].sum(0), **out)


def evaluate_policy(policy: EntityAttentionPolicy | None, env, *, seed: int = 0,
                    greedy: bool = False) -> float:
    """Mean undiscounted return over ``env.num_envs`` episodes drawn with ``seed``
    (``policy=None``: uniformly random actions); the policy is left in eval mode."""
    check_int("seed", seed)
    if policy is not None:
        policy.eval()
    with torch.no_grad():
        played = rollout(policy, env, torch.Generator().manual_seed(int(seed)), greedy=greedy)
    return float(played.returns.mean())


@dataclass
class RLHistory:
    """What :func:`train_policy` returns: per update, the mean episode return and the loss; the
    wall-clock time."""

    returns: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """Return-to-go ``G_t = r_t + gamma * G_{t+1}`` of ``rewards`` ``(T, B)`` → ``(T, B)``."""
    check_tensor("rewards", rewards, ndim=2, floating=True)
    gamma = check_float("gamma", gamma, minimum=0.0, maximum=1.0)
    out = torch.zeros_like(rewards)  # (T, B)
    running = torch.zeros_like(rewards[0])  # (B,)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def train_policy(policy: EntityAttentionPolicy, env, *, updates: int, lr: float = 5e-3,
                 gamma: float = 0.9, value_coef: float = 0.5, entropy_coef: float = 0.01,
                 clip_norm: float = 1.0, normalize: bool = True, seed: int = 0) -> RLHistory:
    """Train ``policy`` on ``env`` for ``updates`` Adam steps, each on a fresh batch of
    ``env.num_envs`` episodes (see the module docstring for the loss). Deterministic per
    ``seed``: episodes and actions come from a generator seeded with it. Returns the history;
    the policy is left in eval mode."""
    if not isinstance(policy, EntityAttentionPolicy):
        raise TypeError(f"policy must be an EntityAttentionPolicy, got {type(policy).__name__}")
    _check_env(env)
    check_int("updates", updates, minimum=1)
    check_int("seed", seed)
    lr = check_float("lr", lr, minimum=0.0, include_minimum=False)
    gamma = check_float("gamma", gamma, minimum=0.0, maximum=1.0)
    value_coef = check_float("value_coef", value_coef, minimum=0.0)
    entropy_coef = check_float("entropy_coef", entropy_coef, minimum=0.0)
    clip_norm = check_float("clip_norm", clip_norm, minimum=0.0, include_minimum=False)
    check_bool("normalize", normalize)
    generator = torch.Generator().manual_seed(int(seed))
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    history = RLHistory()
    start = time.perf_counter()
    policy.train()
    for _ in range(updates):
        played = rollout(policy, env, generator)
        alive = played.alive.float()  # (T, B)
        steps = alive.sum()
        target = discounted_returns(played.rewards, gamma)  # (T, B)
        advantage = (target - played.values).detach()  # (T, B)
        if normalize:  # zero mean, unit variance over the steps played
            mean = (advantage * alive).sum() / steps
            std = (((advantage - mean) ** 2 * alive).sum() / steps).sqrt()
            advantage = (advantage - mean) / (std + 1e-8)
        policy_loss = -(advantage * played.log_probs * alive).sum() / steps
        value_loss = ((target - played.values) ** 2 * alive).sum() / steps
        entropy = (played.entropy * alive).sum() / steps
        loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), clip_norm)
        optimizer.step()
        history.returns.append(float(played.returns.mean()))
        history.losses.append(loss.item())
    history.seconds = time.perf_counter() - start
    policy.eval()
    return history
