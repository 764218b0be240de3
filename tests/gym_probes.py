"""Gymnasium probe environments whose every transition can be checked from its numbers alone.

`Counter`: obs = (steps taken in the episode, the episode's tag), the reward of step t is t.
An episode whose tag is even terminates at step 3; the others are cut by the TimeLimit at
step 5. So a true transition has next count = count + 1, the same tag, reward = next count,
and terminated exactly when the tag is even and next count is 3; a cut shows next count 5.
Named as `gymnasium:gym_probes:FACTORY` (tests/ is on the path).
"""

import threading

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

LIMIT, TERMINAL_STEP = 5, 3


class Counter(gymnasium.Env):
    observation_space = gymnasium.spaces.Box(0.0, 1000.0, (2,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)
    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    resets = steps = 0  # every reset and step of every copy in this process (the callbacks' count)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def render(self):
        """A 20x20 picture: red 40 per step taken, green 255 for an odd tag (an episode cut at LIMIT)."""
        return np.broadcast_to(np.array([40 * self.t, 255 * (self.tag % 2), 0], np.uint8), (20, 20, 3)).copy()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        Counter.resets += 1
        self.t, self.tag = 0, int(self.np_random.integers(1, 1000))
        return self._obs(), {}

    def step(self, action):
        assert action in (0, 1)
        Counter.steps += 1
        self.t += 1
        return self._obs(), float(self.t), self.tag % 2 == 0 and self.t == TERMINAL_STEP, False, {}

    def _obs(self):
        return np.array([self.t, self.tag], np.float32)


def counter():
    return gymnasium.wrappers.TimeLimit(Counter(), LIMIT)


def counter_drawn():
    return gymnasium.wrappers.TimeLimit(Counter(render_mode="rgb_array"), LIMIT)


def _vector(num_envs, mode):
    return SyncVectorEnv([counter] * num_envs, autoreset_mode=mode)


def counter_next_step(num_envs):
    return _vector(num_envs, AutoresetMode.NEXT_STEP)


def counter_same_step(num_envs):
    return _vector(num_envs, AutoresetMode.SAME_STEP)


def counter_disabled(num_envs):
    return _vector(num_envs, AutoresetMode.DISABLED)


class DictObs(gymnasium.Env):
    """A Dict observation: a position (Box) and a room (Discrete 3); flattened as [room one-hot, position]."""

    observation_space = gymnasium.spaces.Dict({"position": gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32),
                                               "room": gymnasium.spaces.Discrete(3)})
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"position": np.array([0.5, -0.5], np.float32), "room": 2}, {}

    def step(self, action):
        return {"position": np.array([0.25, 0.0], np.float32), "room": 1}, 0.0, True, False, {}


class Continuous(Counter):
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)


def dict_obs():
    return DictObs()


def continuous():
    return Continuous()


def not_an_env():
    return "CartPole"


class Locked(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """A wrapper holding a lock: no deep copy, but its spec records it (Gymnasium re-makes it)."""

    def __init__(self, env):
        gymnasium.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.lock = threading.Lock()


class Uncopyable(Counter):
    """A Counter holding a lock and made without Gymnasium's registry: neither copied nor re-made."""

    def __init__(self):
        self.lock = threading.Lock()


gymnasium.register("gym_probes/Counter-v0", entry_point=Counter, max_episode_steps=LIMIT)  # gymnasium:gym_probes:ID
