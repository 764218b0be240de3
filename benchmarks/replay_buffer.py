"""qlax.components.replay.uniform against flashbax's flat buffer: add 16, sample 32, per iteration, compiled.

    python benchmarks/replay_buffer.py [--iterations 10000] [--repeats 9] [--no-item]

Both buffers run the same loop, a jitted `lax.scan` of `--iterations` iterations, each
adding 16 CartPole-shaped transitions (`qlax.core.types.Transition`: obs (4,), action, reward,
next_obs (4,), terminated) and then sampling 32, over the same pre-generated transitions
and sampling keys, capacity 100,000, in the same process. Every field of every sampled
batch feeds a checksum the loop returns, so XLA cannot drop any of the work. Each loop is
compiled ahead of time and run once untimed; then the loops take turns for `--repeats`
timed runs each, and each one's MEDIAN run is reported (the best is printed beside it). flashbax's flat buffer samples (t, t+1)
pairs; only `.first` (the stored Transition, which carries next_obs itself) is used.
flashbax's item buffer is timed too, for reference, unless --no-item.

Goal: qlax at least 1.5x flashbax's flat buffer. flashbax is in the `bench` extra.
"""

from __future__ import annotations

import argparse

from _timing import emit, interleaved_timings, summary

import flashbax
import jax
import jax.numpy as jnp

from qlax.components.replay import uniform
from qlax.core.types import Transition

CAPACITY, ADD, SAMPLE, OBS_DIM = 100_000, 16, 32, 4
GOAL_RATIO = 1.5


def transitions(key, n):
    """n random CartPole-shaped transitions, as qlax stores them."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return Transition(obs=jax.random.normal(k1, (n, OBS_DIM)), action=jax.random.randint(k2, (n,), 0, 2),
                      reward=jnp.ones((n,)), next_obs=jax.random.normal(k3, (n, OBS_DIM)),
                      terminated=jax.random.bernoulli(k4, 0.05, (n,)))


EXAMPLE = jax.tree.map(lambda x: x[0], transitions(jax.random.PRNGKey(0), 1))


def inputs(iterations):
    """(transitions with leaves (iterations, ADD, ...), sampling keys (iterations, 2)), made once."""
    k_data, k_sample = jax.random.split(jax.random.PRNGKey(1))
    data = jax.vmap(lambda k: transitions(k, ADD))(jax.random.split(k_data, iterations))
    return jax.block_until_ready((data, jax.random.split(k_sample, iterations)))


def checksum(tree) -> jax.Array:
    """A float32 that depends on every element of every leaf."""
    return sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(tree))


def scan_loop(init, add, sample):
    """run(data, keys): per iteration, add one batch, then sample a batch; returns a checksum."""

    def body(carry, xs):
        state, total = carry
        batch, key = xs
        state = add(state, batch)
        return (state, total + checksum(sample(state, key))), None

    def run(data, keys):
        return jax.lax.scan(body, (init(), jnp.float32(0.0)), (data, keys))[0][1]

    return jax.jit(run)


def qlax_loop():
    return scan_loop(lambda: uniform.init(EXAMPLE, CAPACITY), uniform.add,
                     lambda state, key: uniform.sample(state, key, SAMPLE))


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


def compiled_runs(loops: dict, data, keys) -> dict:
    """name -> a no-argument call of that loop, compiled ahead of time (compile excluded)."""
    runs = {}
    for name, loop in loops.items():
        compiled = loop().lower(data, keys).compile()
        runs[name] = lambda compiled=compiled: compiled(data, keys)
    return runs


def time_loops(loops: dict, data, keys, repeats) -> dict:
    """name -> {median, best, worst} iterations/s; the loops' timed runs take turns."""
    timings = interleaved_timings(compiled_runs(loops, data, keys), repeats)
    result = {}
    for name, times in timings.items():
        stats = summary(times)
        result[name] = {"median": len(keys) / stats["median_s"], "best": len(keys) / stats["best_s"],
                        "worst": len(keys) / stats["worst_s"]}
    return result


def time_loop(loop, data, keys, repeats) -> dict:
    """{median, best, worst} iterations/s of one loop."""
    return time_loops({"loop": loop}, data, keys, repeats)["loop"]


def iterations_per_s(loop, data, keys, repeats) -> float:
    """The median iterations/s of `time_loop` (used by prioritized_buffer.py)."""
    return time_loop(loop, data, keys, repeats)["median"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-item", action="store_true", help="skip flashbax's item buffer")
    args = parser.parse_args()
    data, keys = inputs(args.iterations)
    loops = {"qlax": qlax_loop, "flat": flashbax_loop}
    if not args.no_item:
        loops["item"] = flashbax_item_loop
    print(f"{args.iterations:,} iterations of add {ADD} + sample {SAMPLE}, capacity {CAPACITY:,}; "
          f"{args.repeats} timed runs each, taking turns; MEDIAN reported (best in brackets); "
          f"compile excluded", flush=True)
    rates = time_loops(loops, data, keys, args.repeats)
    ours, theirs = rates["qlax"], rates["flat"]
    print(f"qlax uniform:       {ours['median']:12,.0f} iterations/s  (best {ours['best']:,.0f})")
    print(f"flashbax flat:      {theirs['median']:12,.0f} iterations/s  (best {theirs['best']:,.0f})")
    item = rates.get("item")
    if item is not None:
        print(f"flashbax item:      {item['median']:12,.0f} iterations/s  (best {item['best']:,.0f}; "
              f"reference only: single items, no (t, t+1) pairs)")
    ratio = ours["median"] / theirs["median"]
    print(f"ratio qlax / flat:  {ratio:12,.2f}x  (medians; bests give {ours['best'] / theirs['best']:.2f}x)"
          f"   goal >= {GOAL_RATIO}x: {'met' if ratio >= GOAL_RATIO else 'NOT met'}")
    result = {"benchmark": "replay_buffer", "statistic": "median", "repeats": args.repeats,
              "iterations": args.iterations,
              "qlax_iterations_per_s": round(ours["median"], 1),
              "flashbax_iterations_per_s": round(theirs["median"], 1),
              "ratio": round(ratio, 3), "ratio_best": round(ours["best"] / theirs["best"], 3),
              "goal_ratio": GOAL_RATIO, "meets_goal": bool(ratio >= GOAL_RATIO)}
    if item is not None:
        print(f"ratio qlax / item:  {ours['median'] / item['median']:12,.2f}x")
        result.update(flashbax_item_iterations_per_s=round(item["median"], 1),
                      ratio_item=round(ours["median"] / item["median"], 3))
    emit(result)

if __name__ == "__main__":
    main()
