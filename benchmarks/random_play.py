"""What uniformly random play over the legal actions returns on each environment of the
transfer suite: the floor that a learned greedy policy should clear before a comparison
between two libraries says anything about learning.

    python benchmarks/random_play.py [--envs NAME,...] [--episodes 100] [--seed 0]

Each env is qlax's own (`qlax.envs.make_env`, what training steps): `--episodes` copies,
each playing its first episode to its end (the game's end where the env tells lives from
games) with actions drawn uniformly over the legal ones (the env's action mask where it has
one, as qlax's exploration draws them), all copies in one jitted loop. The return is the
score as qlax's evaluation reports it. Prints each env's mean return, the 25th-75th
percentiles of its 20-episode means (the transfer suite evaluates 20 or fewer episodes a
seed on its long-episode envs) and the episodes' mean length, then one JSON line.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

import transfer
from qlax.envs import make_env
from qlax.envs.base import legal_actions

# A bound on an episode where the env states no time limit (none of the suite's lacks one).
MAX_STEPS = 100_000


def random_returns(name: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(return, length) of each copy's first episode under uniformly random legal actions."""
    env = make_env(name, episodes)
    limit = env.spec.max_episode_steps or MAX_STEPS

    def play(key):
        obs, env_state = env.reset(key)
        zeros = jnp.zeros(episodes)

        def running(carry):
            _, _, _, _, ended, t, _ = carry
            return ~jnp.all(ended) & (t < limit)

        def step(carry):
            key, obs, env_state, returns, ended, t, lengths = carry
            key, k_action, k_step = jax.random.split(key, 3)
            legal = legal_actions(env.spec, obs)
            logits = jnp.zeros((episodes, env.spec.num_actions)) if legal is None else jnp.where(legal, 0.0, -jnp.inf)
            out = env.step(k_step, env_state, obs, jax.random.categorical(k_action, logits).astype(jnp.int32))
            returns = returns + jnp.where(ended, 0.0, out.score)
            lengths = lengths + (~ended).astype(jnp.float32)
            return key, out.obs, out.env_state, returns, ended | out.game_over, t + 1, lengths

        carry = (key, obs, env_state, zeros, jnp.zeros(episodes, bool), 0, zeros)
        _, _, _, returns, _, _, lengths = jax.lax.while_loop(running, step, carry)
        return returns, lengths

    returns, lengths = jax.jit(play)(jax.random.PRNGKey(seed))
    return np.asarray(returns), np.asarray(lengths)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(transfer.ENVS), help="comma-separated env names")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = []
    for name in args.envs.split(","):
        returns, lengths = random_returns(name, args.episodes, args.seed)
        groups = returns[: len(returns) // 20 * 20].reshape(-1, 20).mean(axis=1)
        quartiles = np.percentile(groups, [25, 75]) if len(groups) else (np.nan, np.nan)
        print(f"{name:45s} random play: mean {returns.mean():9.3f}  20-episode means {quartiles[0]:.3f}-"
              f"{quartiles[1]:.3f}  length {lengths.mean():7.1f}", flush=True)
        rows.append({"env": name, "episodes": len(returns), "mean_return": float(returns.mean()),
                     "mean_length": float(lengths.mean()), "returns": returns.round(4).tolist()})
    print(json.dumps({"benchmark": "random_play", "seed": args.seed, "rows": rows}))


if __name__ == "__main__":
    main()
