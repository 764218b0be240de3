"""qlax.components.replay.prioritized against flashbax's prioritised flat buffer: add 16, sample 32, reprioritize 32.

    python benchmarks/prioritized_buffer.py [--iterations 5000] [--repeats 5]

The same loop (a jitted lax.scan over the same pre-generated transitions, keys and TD
errors) for both, capacity 100,000, alpha 0.6, in the same process; median of `repeats`
timed runs, compile excluded. flashbax is in the `bench` extra.
"""

import argparse

from _timing import emit

import flashbax
import jax
import jax.numpy as jnp

from qlax.components.replay import prioritized
from replay_buffer import ADD, CAPACITY, EXAMPLE, SAMPLE, checksum, inputs, iterations_per_s

ALPHA = 0.6


def scan_loop(init, step):
    """run(data, keys): `step(state, batch, key, td) -> (state, sampled batch)` per iteration.

    Every field of every sampled batch feeds the returned checksum, so none of the
    sampling can be dropped by XLA as dead code.
    """

    def body(carry, xs):
        state, total = carry
        batch, key = xs
        td = jax.random.uniform(key, (SAMPLE,))
        state, sampled = step(state, batch, key, td)
        return (state, total + checksum(sampled)), None

    def run(data, keys):
        return jax.lax.scan(body, (init(), jnp.float32(0.0)), (data, keys))[0][1]

    return jax.jit(run)


def qlax_loop():
    def step(state, batch, key, td):
        state = prioritized.add(state, batch)
        sampled, rows, _ = prioritized.sample(state, key, SAMPLE, 0.4)
        return prioritized.update_priorities(state, rows, td, ALPHA), sampled

    return scan_loop(lambda: prioritized.init(EXAMPLE, CAPACITY), step)


def flashbax_loop():
    buffer = flashbax.make_prioritised_flat_buffer(max_length=CAPACITY, min_length=SAMPLE, sample_batch_size=SAMPLE,
                                                   add_batch_size=ADD, priority_exponent=ALPHA)

    def step(state, batch, key, td):
        state = buffer.add(state, batch)
        sampled = buffer.sample(state, key)
        return buffer.set_priorities(state, sampled.indices, td), sampled.experience.first

    return scan_loop(lambda: buffer.init(EXAMPLE), step)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data, keys = inputs(args.iterations)
    ours = iterations_per_s(qlax_loop, data, keys, args.repeats)
    theirs = iterations_per_s(flashbax_loop, data, keys, args.repeats)
    print(f"qlax prioritized:   {ours:12,.0f} iterations/s (add {ADD}, sample {SAMPLE}, reprioritize {SAMPLE})")
    print(f"flashbax:           {theirs:12,.0f} iterations/s (prioritised flat buffer)")
    print(f"ratio:              {ours / theirs:12,.2f}x")
    emit({"benchmark": "prioritized_buffer", "qlax_iterations_per_s": round(ours, 1),
          "flashbax_iterations_per_s": round(theirs, 1), "ratio": round(ours / theirs, 3)})


if __name__ == "__main__":
    main()
