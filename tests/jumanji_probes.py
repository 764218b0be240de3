"""A Jumanji environment built for tests: where its episodes end, and how, is known."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jumanji


class CounterObservation(NamedTuple):
    mask: jax.Array  # fields in another order than the spec names them
    count: jax.Array


class CounterEnv(jumanji.env.Environment):
    """A Jumanji environment that terminates on action 1 and is cut after 3 steps (discount 1)."""

    def reset(self, key):
        count = jnp.int32(0)
        return count, jumanji.types.restart(self._observe(count))

    def step(self, count, action):
        count = count + 1
        observation = self._observe(count)
        timestep = jax.lax.cond(
            action == 1, lambda: jumanji.types.termination(jnp.float32(1.0), observation),
            lambda: jax.lax.cond(count >= 3, lambda: jumanji.types.truncation(jnp.float32(0.0), observation),
                                 lambda: jumanji.types.transition(jnp.float32(0.0), observation)))
        return count, timestep

    @staticmethod
    def _observe(count):
        return CounterObservation(mask=jnp.array([True, False]), count=count)

    @property
    def observation_spec(self):
        specs = jumanji.specs
        return specs.Spec(CounterObservation, "observation", count=specs.BoundedArray((), jnp.int32, 0, 3, "count"),
                          mask=specs.BoundedArray((2,), bool, False, True, "mask"))

    @property
    def action_spec(self):
        return jumanji.specs.DiscreteArray(2)
