"""The entity-attention policy: shapes, no weight on the agent or on padding, padding that
cannot change the output, the rollout and return bookkeeping, learning on a tiny task, and
argument checks. Runs without gymnasium: the environments here are tiny duck-typed ones."""

import pytest
import torch

from attention_course.models.rl import (
    EntityAttentionPolicy,
    discounted_returns,
    evaluate_policy,
    rollout,
    train_policy,
)

F = 9  # [is_agent, is_object, colour one-hot (4), slot one-hot (3)]


class PickTheCue:
    """One-step bandit: ``K`` objects of distinct colours, each labelled with its slot ``k``;
    action ``k`` picks object ``k``; reward 1 if its colour is the agent's cue."""

    num_actions = 3
    max_steps = 1

    def __init__(self, num_envs):
        self.num_envs = num_envs

    def reset(self, generator):
        B, K = self.num_envs, self.num_actions
        colours = torch.rand(B, 4, generator=generator).argsort(1)[:, :K]  # (B, K)
        self.target = torch.randint(K, (B,), generator=generator)
        entities = torch.zeros(B, 1 + K, F)
        entities[:, 0, 0] = 1
        entities[torch.arange(B), 0, 2 + colours[torch.arange(B), self.target]] = 1
        entities[:, 1:, 1] = 1
        entities[:, 1:, 2:6] = torch.nn.functional.one_hot(colours, 4).float()
        entities[:, 1:, 6:] = torch.eye(K)  # the slot label: which action picks it
        return entities, torch.ones(B, 1 + K, dtype=torch.bool)

    def step(self, actions):
        reward = (actions == self.target).float()
        done = torch.ones(self.num_envs, dtype=torch.bool)
        return None, None, reward, done, torch.zeros_like(done)


def inputs(B=4, M=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    entities = torch.randn(B, M, F, generator=g)
    mask = torch.rand(B, M, generator=g) < 0.6
    mask[:, 0] = True
    mask[0, 1:] = False  # an agent alone: no key at all
    return entities, mask


def policy(**kwargs):
    torch.manual_seed(0)
    return EntityAttentionPolicy(F, 3, **kwargs)


@pytest.mark.parametrize("heads", [1, 2])
def test_shapes_and_no_weight_on_the_agent_or_on_padding(heads):
    entities, mask = inputs()
    logits, value, weights = policy(num_heads=heads)(entities, mask, need_weights=True)
    assert logits.shape == (4, 3) and value.shape == (4,) and weights.shape == (4, heads, 5)
    keys = mask.clone()
    keys[:, 0] = False
    assert (weights[~keys[:, None].expand_as(weights)] == 0).all()
    assert torch.allclose(weights[1:].sum(-1), torch.ones(3, heads))  # every row has a key
    assert (weights[0] == 0).all() and torch.isfinite(logits).all()
    assert policy(num_heads=heads)(entities, mask)[2] is None


def test_padding_rows_cannot_change_the_output():
    entities, mask = inputs()
    model = policy()
    changed = entities.clone()
    changed[~mask] = 100.0
    a = model(entities, mask, need_weights=True)
    b = model(changed, mask, need_weights=True)
    for x, y in zip(a, b, strict=True):
        assert torch.allclose(x, y, atol=1e-6)
    mask_all = torch.ones_like(mask)  # the same rows, now real: the output does change
    assert not torch.allclose(model(changed, mask_all)[0], a[0])


def test_discounted_returns():
    rewards = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])  # (T=3, B=2)
    out = discounted_returns(rewards, 0.5)
    assert torch.allclose(out, torch.tensor([[0.25, 1.0], [0.5, 0.0], [1.0, 0.0]]))


def test_rollout_records_alive_steps_and_returns():
    env = PickTheCue(64)
    played = rollout(policy(), env, torch.Generator().manual_seed(0))
    assert played.log_probs.shape == (1, 64) and played.alive.all()
    assert torch.equal(played.returns, played.rewards.sum(0))
    random = rollout(None, env, torch.Generator().manual_seed(0))
    assert random.log_probs is None and random.returns.shape == (64,)


def test_training_learns_to_pick_the_cued_object_and_attends_to_it():
    model = policy()
    env = PickTheCue(128)
    before = evaluate_policy(model, PickTheCue(1000), seed=1, greedy=True)
    history = train_policy(model, env, updates=60, lr=1e-2, seed=0)
    after = evaluate_policy(model, PickTheCue(1000), seed=1, greedy=True)
    random = evaluate_policy(None, PickTheCue(1000), seed=1)
    assert abs(random - 1 / 3) < 0.05 and before < 0.5
    assert after > 0.9, (before, after)
    assert sum(history.returns[-10:]) > sum(history.returns[:10]) + 3
    test = PickTheCue(500)
    entities, mask = test.reset(torch.Generator().manual_seed(2))
    with torch.no_grad():
        _, _, w = model(entities, mask, need_weights=True)
    on_target = w[torch.arange(500), 0, 1 + test.target].mean()
    assert on_target > 0.6  # uniform would be 1/3


def test_training_is_deterministic_per_seed():
    runs = []
    for _ in range(2):
        model = policy()
        runs.append(train_policy(model, PickTheCue(16), updates=3, seed=5).losses)
    assert runs[0] == runs[1]


def test_bad_arguments_are_named():
    model = policy()
    entities, mask = inputs()
    with pytest.raises(ValueError, match=r"entities must have shape \(B, M >= 1, 9\)"):
        model(entities[..., :5], mask)
    with pytest.raises(TypeError, match="mask must have dtype torch.bool"):
        model(entities, mask.long())
    with pytest.raises(ValueError, match=r"mask must have shape \(B, M\) = \(4, 5\)"):
        model(entities, mask[:, :4])
    bad = mask.clone()
    bad[1, 0] = False
    with pytest.raises(ValueError, match=r"mask\[:, 0\]"):
        model(entities, bad)
    with pytest.raises(TypeError, match="need_weights"):
        model(entities, mask, need_weights=1)
    with pytest.raises(TypeError, match="num_actions"):
        EntityAttentionPolicy(F, 3.0)
    with pytest.raises(TypeError, match="env must be a batched environment"):
        train_policy(model, object(), updates=1)
    with pytest.raises(ValueError, match="updates"):
        train_policy(model, PickTheCue(2), updates=0)
    with pytest.raises(ValueError, match="gamma"):
        train_policy(model, PickTheCue(2), updates=1, gamma=1.5)
    with pytest.raises(TypeError, match="policy must be an EntityAttentionPolicy"):
        rollout(torch.nn.Linear(2, 2), PickTheCue(2), torch.Generator())
