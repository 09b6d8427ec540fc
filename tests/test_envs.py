"""The fetch-the-cued-object environment: gymnasium's checker, seeding, the observation's
layout, the reward and termination rules, and argument checks."""

import warnings

import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from attention_course.envs import ENV_ID, MOVES, CueGridEnv, CueGridVec  # noqa: E402


@pytest.mark.parametrize("render_mode", [None, "ansi"])
def test_gymnasium_env_checker_passes_without_a_warning(render_mode):
    env = gym.make(ENV_ID, render_mode=render_mode).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)


def test_reset_with_a_seed_is_deterministic_and_seeds_differ():
    env = CueGridEnv()
    a, info_a = env.reset(seed=3)
    b, info_b = env.reset(seed=3)
    c, _ = env.reset(seed=4)
    assert np.array_equal(a["entities"], b["entities"]) and info_a == info_b
    assert not np.array_equal(a["entities"], c["entities"])


def test_the_observation_describes_the_state():
    vec = CueGridVec(64, size=6, num_colours=5, min_objects=1, max_objects=3)
    entities, mask = vec.reset(torch.Generator().manual_seed(0))
    assert entities.shape == (64, 4, 9) and mask.shape == (64, 4)
    assert mask[:, 0].all() and torch.equal(mask[:, 1:], vec.present)
    assert (entities[~mask] == 0).all()  # padding rows are zeros
    rows = torch.arange(64)
    cue = entities[:, 0, 2:7].argmax(-1)
    assert torch.equal(cue, vec.colours[rows, vec.target])  # the agent carries the cue
    colours = vec.colours.masked_fill(~vec.present, -1)
    assert ((colours == cue[:, None]).sum(1) == 1).all()  # exactly one object matches
    rel = (entities[:, 1:, 7:] * 5).round().long()  # (dx, dy) * (size - 1)
    expected = (vec.positions - vec.agent[:, None]) * vec.present[..., None]
    assert torch.equal(rel, expected)
    assert vec.present.sum(1).min() == 1 and vec.present.sum(1).max() == 3


def test_walking_to_the_target_ends_the_episode_with_reward_one():
    vec = CueGridVec(32)
    vec.reset(torch.Generator().manual_seed(1))
    rows = torch.arange(32)
    total = torch.zeros(32)
    ended_at = torch.full((32,), -1)
    for t in range(vec.max_steps):
        d = vec.positions[rows, vec.target] - vec.agent  # (B, 2)
        action = torch.where(d[:, 0] > 0, 1, torch.where(d[:, 0] < 0, 3,
                             torch.where(d[:, 1] > 0, 2, 0)))
        *_, reward, terminated, truncated = vec.step(action)
        total += reward
        assert not truncated.any()
        ended_at[terminated] = t
    assert (total == 1).all()  # one reward per episode, then frozen
    assert (ended_at >= 0).all() and vec.done.all()


def test_walls_distractors_and_truncation():
    vec = CueGridVec(1, size=3, num_colours=2, min_objects=2, max_objects=2, max_steps=4)
    vec.reset(torch.Generator().manual_seed(0))
    vec.agent = torch.tensor([[0, 0]])
    vec.positions = torch.tensor([[[1, 0], [2, 2]]])  # a distractor right of the agent
    vec.target = torch.tensor([1])
    up, right = 0, 1
    *_, reward, terminated, truncated = vec.step(torch.tensor([up]))
    assert vec.agent.tolist() == [[0, 0]]  # the wall
    *_, reward, terminated, truncated = vec.step(torch.tensor([right]))
    assert vec.agent.tolist() == [[1, 0]]  # on the distractor: nothing happens
    assert reward.item() == 0 and not terminated.item() and not truncated.item()
    vec.step(torch.tensor([right]))
    *_, reward, terminated, truncated = vec.step(torch.tensor([right]))
    assert reward.item() == 0 and not terminated.item() and truncated.item()
    *_, reward, terminated, truncated = vec.step(torch.tensor([up]))  # frozen
    assert vec.steps.item() == 4 and not (terminated | truncated).item()


def test_the_gymnasium_env_follows_the_vectorised_rules():
    env = CueGridEnv(render_mode="ansi")
    obs, info = env.reset(seed=0)
    v = env.vec
    goal = v.positions[0, v.target[0]]
    assert info["target"] == 1 + int(v.target[0])
    assert obs["mask"].dtype == np.int8 and obs["entities"].dtype == np.float32
    assert "[" in env.render() and "A" in env.render()
    reward, terminated = 0.0, False
    while not terminated:
        d = goal - v.agent[0]
        action = 1 if d[0] > 0 else 3 if d[0] < 0 else 2 if d[1] > 0 else 0
        assert torch.equal(MOVES[action].sign(), MOVES[action])
        obs, reward, terminated, truncated, info = env.step(action)
        assert not truncated
    assert reward == 1.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_objects"):
        CueGridVec(2, num_colours=3, max_objects=4)
    with pytest.raises(ValueError, match="size"):
        CueGridVec(2, size=1)
    with pytest.raises(TypeError, match="num_envs"):
        CueGridVec(2.0)
    vec = CueGridVec(2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(torch.tensor([0, 1]))
    vec.reset(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\)"):
        vec.step(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"actions must be ids in \[0, 3\]"):
        vec.step(torch.tensor([0, 4]))
    with pytest.raises(TypeError, match="actions"):
        vec.step(torch.tensor([0.0, 1.0]))
    env = CueGridEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be in Discrete"):
        env.step(7)
    with pytest.raises(ValueError, match="render_mode"):
        CueGridEnv(render_mode="human")


def test_nothing_in_the_package_imports_the_envs_module():
    import subprocess
    import sys
    code = ("import sys, pkgutil, importlib, attention_course\n"
            "for m in pkgutil.walk_packages(attention_course.__path__, 'attention_course.'):\n"
            "    if m.name.split('.')[-1] not in ('envs', '__main__'):\n"
            "        importlib.import_module(m.name)\n"
            "print('attention_course.envs' in sys.modules, 'gymnasium' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
