r"""Chapter 9's reinforcement-learning task: *fetch the cued object* on a small grid.

A ``size × size`` grid holds the agent and ``n`` objects (``min_objects <= n <= max_objects``)
of distinct colours, on distinct random cells. The agent carries a *cue*, the colour of one of
the objects (the target). Each step it moves up, right, down or left (a move into the wall
leaves it in place). Stepping on the target ends the episode (``terminated``) with reward
``+1``; distractors can be walked over and give nothing. After ``max_steps`` steps (default
``2 * size``) without reaching the target the episode is ``truncated`` with reward ``0``.
The return of an episode is therefore 1 for a success and 0 otherwise; the mean return is the
success rate.

**The observation is a set of entities**, padded to ``M = 1 + max_objects`` rows of
``F = 4 + num_colours`` features, with a mask (``True`` = a real entity)::

    row 0            the agent:   [1, 0, cue colour one-hot (C), 0, 0]
    rows 1 … n       the objects: [0, 1, colour one-hot (C), dx, dy]
    rows n+1 … M-1   padding:     zeros, mask False

``dx, dy`` are the object's position relative to the agent divided by ``size - 1`` (in
``[-1, 1]``; ``dy > 0`` is down). Nothing in a row says which object is the target: a policy
has to compare each object's colour with the agent's cue, which is what attention does.

Two faces of one set of rules: :class:`CueGridVec` plays ``num_envs`` episodes at once on torch
tensors (what training uses); :class:`CueGridEnv` is a ``gymnasium.Env`` (it passes
``gymnasium.utils.env_checker.check_env``) that runs a :class:`CueGridVec` of one episode.

gymnasium is an optional dependency: nothing in the package imports this module.
Shape legend: ``B`` episodes, ``M`` entity slots, ``F`` features, ``K = max_objects``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from attention_course._checks import check_generator, check_int, check_tensor

__all__ = ["CueGridVec", "CueGridEnv", "ACTIONS", "MOVES", "ENV_ID"]

#: The id under which importing this module registers :class:`CueGridEnv` with gymnasium:
#: ``gymnasium.make(ENV_ID, **kwargs)``.
ENV_ID = "AttentionCourse/CueGrid-v0"
#: Action names, by action id.
ACTIONS = ("up", "right", "down", "left")
#: ``(dx, dy)`` of each action (``dy > 0`` is down, as in an image).
MOVES = torch.tensor([[0, -1], [1, 0], [0, 1], [-1, 0]])


def _check_sizes(size, num_colours, min_objects, max_objects, max_steps) -> int:
    check_int("size", size, minimum=2)
    check_int("num_colours", num_colours, minimum=1)
    check_int("min_objects", min_objects, minimum=1)
    check_int("max_objects", max_objects, minimum=1)
    if not min_objects <= max_objects <= num_colours:
        raise ValueError(f"need min_objects <= max_objects <= num_colours (each object has its "
                         f"own colour), got min_objects={min_objects}, "
                         f"max_objects={max_objects}, num_colours={num_colours}")
    if max_objects + 1 > size * size:
        raise ValueError(f"max_objects={max_objects} objects and the agent need "
                         f"{max_objects + 1} cells, but a size={size} grid has {size * size}")
    max_steps = 2 * size if max_steps is None else max_steps
    check_int("max_steps", max_steps, minimum=1)
    return max_steps


class CueGridVec:
    """``num_envs`` fetch-the-cued-object episodes, stepped together on torch tensors.

    ``reset(generator)`` → ``(entities (B, M, F) float32, mask (B, M) bool)``;
    ``step(actions (B,))`` → ``(entities, mask, reward (B,) float32, terminated (B,) bool,
    truncated (B,) bool)``. An episode that has ended stays frozen (reward 0, both flags
    ``False``) until the next ``reset``. The state is readable: ``agent`` ``(B, 2)``,
    ``positions`` ``(B, K, 2)`` (``x, y``), ``colours`` ``(B, K)``, ``present`` ``(B, K)``,
    ``target`` ``(B,)`` (the target is entity ``1 + target``), ``steps`` and ``done`` ``(B,)``.
    """

    num_actions = len(ACTIONS)

    def __init__(self, num_envs: int, *, size: int = 5, num_colours: int = 4,
                 min_objects: int = 2, max_objects: int = 4, max_steps: int | None = None):
        check_int("num_envs", num_envs, minimum=1)
        self.max_steps = _check_sizes(size, num_colours, min_objects, max_objects, max_steps)
        self.num_envs, self.size, self.num_colours = num_envs, size, num_colours
        self.min_objects, self.max_objects = min_objects, max_objects
        self.num_entities = 1 + max_objects  # M
        self.num_features = 4 + num_colours  # F
        self.agent = None  # set by reset

    def reset(self, generator: torch.Generator | None = None):
        """Start ``num_envs`` new episodes drawn with ``generator``; return the observation."""
        check_generator("generator", generator)
        B, K, S, C = self.num_envs, self.max_objects, self.size, self.num_colours
        cells = torch.rand(B, S * S, generator=generator).argsort(dim=1)[:, :1 + K]  # (B, 1+K)
        xy = torch.stack((cells % S, cells // S), dim=-1)  # (B, 1+K, 2)
        self.agent, self.positions = xy[:, 0], xy[:, 1:]  # (B, 2), (B, K, 2)
        self.colours = torch.rand(B, C, generator=generator).argsort(dim=1)[:, :K]  # (B, K)
        span = self.max_objects - self.min_objects + 1
        count = self.min_objects + (torch.rand(B, generator=generator) * span).long()  # (B,)
        self.present = torch.arange(K) < count[:, None]  # (B, K)
        self.target = (torch.rand(B, generator=generator) * count).long()  # (B,) < count
        self.steps = torch.zeros(B, dtype=torch.long)
        self.done = torch.zeros(B, dtype=torch.bool)
        return self.observe()

    def _check_started(self) -> None:
        if self.agent is None:
            raise RuntimeError("call reset(generator) before observe() or step(actions)")

    def observe(self):
        """The current observation ``(entities (B, M, F), mask (B, M))``."""
        self._check_started()
        B, K, C = self.num_envs, self.max_objects, self.num_colours
        entities = torch.zeros(B, 1 + K, self.num_features)  # (B, M, F)
        rows = torch.arange(B)
        cue = self.colours[rows, self.target]  # (B,)
        entities[:, 0, 0] = 1.0
        entities[rows, 0, 2 + cue] = 1.0
        entities[:, 1:, 1] = 1.0
        entities[:, 1:, 2:2 + C] = torch.nn.functional.one_hot(self.colours, C).float()
        rel = (self.positions - self.agent[:, None]).float() / (self.size - 1)  # (B, K, 2)
        entities[:, 1:, 2 + C:] = rel
        mask = torch.cat((torch.ones(B, 1, dtype=torch.bool), self.present), dim=1)  # (B, M)
        return entities.masked_fill(~mask[..., None], 0.0), mask

    def step(self, actions: torch.Tensor):
        """Move every running episode's agent by ``actions`` ``(B,)`` (ids into
        :data:`ACTIONS`); return ``(entities, mask, reward, terminated, truncated)``."""
        self._check_started()
        check_tensor("actions", actions, ndim=1, integer=True)
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"actions must have shape ({self.num_envs},), one per episode, "
                             f"got {tuple(actions.shape)}")
        if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= len(ACTIONS)):
            raise ValueError(f"actions must be ids in [0, {len(ACTIONS) - 1}] "
                             f"({', '.join(ACTIONS)}), got values in "
                             f"[{int(actions.min())}, {int(actions.max())}]")
        running = ~self.done  # (B,)
        moved = (self.agent + MOVES[actions.cpu()]).clamp(0, self.size - 1)  # (B, 2)
        self.agent = torch.where(running[:, None], moved, self.agent)
        goal = self.positions[torch.arange(self.num_envs), self.target]  # (B, 2)
        terminated = running & (self.agent == goal).all(-1)  # (B,)
        reward = terminated.float()  # (B,)
        self.steps += running.long()
        truncated = running & ~terminated & (self.steps >= self.max_steps)
        self.done |= terminated | truncated
        return (*self.observe(), reward, terminated, truncated)


class CueGridEnv(gym.Env):
    """The same task as a ``gymnasium.Env`` (one episode at a time).

    Observation: ``{"entities": Box(-1, 1, (M, F), float32), "mask": MultiBinary(M)}``
    (``mask`` as ``int8``, 1 = a real entity); action: ``Discrete(4)`` (:data:`ACTIONS`).
    ``reset(seed=...)`` seeds the episode stream; ``info["target"]`` is the target's entity
    index (``1 + k``). ``render_mode="ansi"`` renders the grid as text: ``A`` the agent, the
    objects by colour index, the target's in brackets.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, *, size: int = 5, num_colours: int = 4, min_objects: int = 2,
                 max_objects: int = 4, max_steps: int | None = None,
                 render_mode: str | None = None):
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self._vec = CueGridVec(1, size=size, num_colours=num_colours, min_objects=min_objects,
                               max_objects=max_objects, max_steps=max_steps)
        M, F = self._vec.num_entities, self._vec.num_features
        self.observation_space = spaces.Dict({
            "entities": spaces.Box(-1.0, 1.0, shape=(M, F), dtype=np.float32),
            "mask": spaces.MultiBinary(M),
        })
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.render_mode = render_mode

    @property
    def vec(self) -> CueGridVec:
        """The one-episode :class:`CueGridVec` holding the state."""
        return self._vec

    def _obs(self, entities, mask):
        return {"entities": entities[0].numpy().astype(np.float32),
                "mask": mask[0].numpy().astype(np.int8)}

    def _info(self):
        return {"target": 1 + int(self._vec.target[0])}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(0, 2**63 - 1))
        entities, mask = self._vec.reset(torch.Generator().manual_seed(episode_seed))
        return self._obs(entities, mask), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in {self.action_space} (0 … 3: "
                             f"{', '.join(ACTIONS)}), got {action!r}")
        if self._vec.agent is None or bool(self._vec.done[0]):
            raise RuntimeError("the episode has ended (or not started): call reset()")
        entities, mask, reward, terminated, truncated = self._vec.step(
            torch.tensor([int(action)]))
        return (self._obs(entities, mask), float(reward[0]), bool(terminated[0]),
                bool(truncated[0]), self._info())

    def render(self):
        if self.render_mode != "ansi" or self._vec.agent is None:
            return None
        v = self._vec
        grid = [[" . " for _ in range(v.size)] for _ in range(v.size)]
        for k in range(v.max_objects):
            if v.present[0, k]:
                x, y = (int(c) for c in v.positions[0, k])
                name = str(int(v.colours[0, k]))
                grid[y][x] = f"[{name}]" if k == int(v.target[0]) else f" {name} "
        x, y = (int(c) for c in v.agent[0])
        grid[y][x] = " A "
        return "\n".join("".join(row) for row in grid)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=CueGridEnv)
