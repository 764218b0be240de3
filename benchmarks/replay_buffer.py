"""qlax.replay against flashbax's flat buffer: add 16, sample 32, per iteration, compiled.

    python benchmarks/replay_buffer.py [--iterations 10000] [--repeats 5]

Both run the same loop (a jitted lax.scan) over the same pre-generated CartPole-shaped
transitions and sampling keys, capacity 100,000, in the same process, so the timing is
the buffers' own work. Reported: the median of `repeats` timed runs, compile excluded.
Goal: qlax at least 1.5x flashbax. flashbax is in the `bench` extra.
"""

import argparse
import statistics
import time

from _common import emit

import flashbax
import jax
import jax.numpy as jnp

from qlax import replay
from qlax.types import Transition

CAPACITY, ADD, SAMPLE, OBS_DIM = 100_000, 16, 32, 4


def transitions(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    return Transition(obs=jax.random.normal(k1, (n, OBS_DIM)), action=jax.random.randint(k2, (n,), 0, 2),
                      reward=jnp.ones((n,)), next_obs=jax.random.normal(k3, (n, OBS_DIM)),
                      terminated=jnp.zeros((n,), bool))


def inputs(iterations):
    """(transitions (iterations, ADD, ...), sampling keys (iterations, 2)), made once."""
    k_data, k_sample = jax.random.split(jax.random.PRNGKey(1))
    data = jax.vmap(lambda k: transitions(k, ADD))(jax.random.split(k_data, iterations))
    return data, jax.random.split(k_sample, iterations)


def scan_loop(init, add, sample):
    """run(data, keys): add each batch, then sample a batch, summing sampled rewards."""

    def body(carry, xs):
        state, total = carry
        batch, key = xs
        state = add(state, batch)
        return (state, total + jnp.sum(sample(state, key).reward)), None

    def run(data, keys):
        return jax.lax.scan(body, (init(), 0.0), (data, keys))[0][1]

    return jax.jit(run)


EXAMPLE = jax.tree.map(lambda x: x[0], transitions(jax.random.PRNGKey(0), 1))


def qlax_loop():
    return scan_loop(lambda: replay.init(EXAMPLE, CAPACITY), replay.add,
                     lambda state, key: replay.sample(state, key, SAMPLE))


def flashbax_loop():
    buffer = flashbax.make_flat_buffer(max_length=CAPACITY, min_length=SAMPLE, sample_batch_size=SAMPLE,
                                       add_batch_size=ADD)
    return scan_loop(lambda: buffer.init(EXAMPLE), buffer.add,
                     lambda state, key: buffer.sample(state, key).experience.first)


def flashbax_item_loop():
    buffer = flashbax.make_item_buffer(max_length=CAPACITY, min_length=SAMPLE, sample_batch_size=SAMPLE,
                                       add_batches=True)
    return scan_loop(lambda: buffer.init(EXAMPLE), buffer.add,
                     lambda state, key: buffer.sample(state, key).experience)


def iterations_per_s(loop, data, keys, repeats):
    compiled = loop().lower(data, keys).compile()
    jax.block_until_ready(compiled(data, keys))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(compiled(data, keys))
        times.append(time.perf_counter() - started)
    return len(keys) / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data, keys = inputs(args.iterations)
    ours = iterations_per_s(qlax_loop, data, keys, args.repeats)
    theirs = iterations_per_s(flashbax_loop, data, keys, args.repeats)
    item = iterations_per_s(flashbax_item_loop, data, keys, args.repeats)
    print(f"qlax.replay:        {ours:12,.0f} iterations/s (add {ADD}, sample {SAMPLE}; median of {args.repeats})")
    print(f"flashbax flat:      {theirs:12,.0f} iterations/s")
    print(f"flashbax item:      {item:12,.0f} iterations/s (samples single items, no (t, t+1) pairs)")
    print(f"ratio to flat:      {ours / theirs:12,.2f}x   (goal: >= 1.5x)")
    print(f"ratio to item:      {ours / item:12,.2f}x")
    emit({"benchmark": "replay_buffer", "qlax_iterations_per_s": round(ours, 1),
          "flashbax_iterations_per_s": round(theirs, 1), "ratio": round(ours / theirs, 3),
          "flashbax_item_iterations_per_s": round(item, 1), "ratio_item": round(ours / item, 3)})


if __name__ == "__main__":
    main()
