"""Tiny gymnax environments whose correct Q-values are known in closed form."""

import gymnax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeParams(environment.EnvParams):
    max_steps_in_episode: int = 5


class TimeLimitProbe(environment.Environment):
    """One constant observation, reward 1 every step, never terminates, cut after 5 steps.

    The time limit is not part of the state the agent sees, so the right value is the
    infinite-horizon one, 1 / (1 - gamma). Treating the cut as terminal instead gives
    1 / (1 - gamma (1 - 1/5)) on average.
    """

    @property
    def default_params(self):
        return ProbeParams()

    def step_env(self, key, state, action, params):
        state = environment.EnvState(time=state.time + 1)
        return jnp.zeros(1), state, jnp.float32(1.0), jnp.bool_(False), {}

    def reset_env(self, key, params):
        return jnp.zeros(1), environment.EnvState(time=0)

    @property
    def num_actions(self):
        return 2

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


TIME_LIMIT_PROBE = "TimeLimitProbe-qlax"

if TIME_LIMIT_PROBE not in gymnax.registered_envs:
    gymnax.register(TIME_LIMIT_PROBE, TimeLimitProbe)


class CounterProbe(TimeLimitProbe):
    """Like TimeLimitProbe, but the observation is the step count / 10, so a final
    observation (0.5 at the cut) is told apart from the reset one (0.0)."""

    def step_env(self, key, state, action, params):
        state = environment.EnvState(time=state.time + 1)
        return jnp.array([state.time / 10.0]), state, jnp.float32(1.0), jnp.bool_(False), {}


COUNTER_PROBE = "CounterProbe-qlax"

if COUNTER_PROBE not in gymnax.registered_envs:
    gymnax.register(COUNTER_PROBE, CounterProbe)


class Blind(TimeLimitProbe):
    """Mixin result: an environment whose step does not report the final observation."""

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
        info = {k: v for k, v in info.items() if k != "final_observation"}
        return obs, state, reward, terminated, truncated, info


class BlindTimeLimitProbe(Blind):
    """TimeLimitProbe without final observations: the cut transitions cannot be bootstrapped."""


class BlindCounterProbe(Blind, CounterProbe):
    """CounterProbe without final observations."""


class TerminatingCounterProbe(CounterProbe):
    """Counts like CounterProbe, ends by termination at the third step, and has no time limit
    that it could ever reach."""

    @property
    def default_params(self):
        return ProbeParams(max_steps_in_episode=2**30)

    def step_env(self, key, state, action, params):
        obs, state, reward, _, info = super().step_env(key, state, action, params)
        return obs, state, reward, state.time >= 3, info


BLIND_TIME_LIMIT_PROBE = "BlindTimeLimitProbe-qlax"
BLIND_COUNTER_PROBE = "BlindCounterProbe-qlax"
TERMINATING_PROBE = "TerminatingCounterProbe-qlax"

for _name, _cls in ((BLIND_TIME_LIMIT_PROBE, BlindTimeLimitProbe), (BLIND_COUNTER_PROBE, BlindCounterProbe),
                    (TERMINATING_PROBE, TerminatingCounterProbe)):
    if _name not in gymnax.registered_envs:
        gymnax.register(_name, _cls)
