"""The bounded cache of built programs: a process that builds many keeps only the last few."""

import gc
import weakref

import qlax
from qlax.core.program_cache import KEPT, ProgramCache
from qlax.program import trainer


def test_the_least_recently_used_value_goes_first_and_a_hit_builds_nothing():
    built = []
    cache = ProgramCache(size=2)

    def build(name):
        return lambda: built.append(name) or name

    assert cache.get("a", build("a")) == "a" and cache.get("b", build("b")) == "b"
    assert cache.get("a", build("a again")) == "a"  # a hit: built once, now the most recent
    assert cache.get("c", build("c")) == "c"  # past the size: b, the least recent, goes
    assert len(cache) == 2 and built == ["a", "b", "c"]
    assert cache.get("b", build("b again")) == "b again"
    assert cache.get("a", build("a third")) == "a third"  # c and b were more recent than a


def test_training_programs_beyond_the_kept_few_are_freed():
    """make_train builds without compiling; an evicted program is garbage, so whatever
    JAX compiled for it (its memory mappings) goes with it."""
    first = trainer.make_train(qlax.TrainConfig(num_centers=3))
    gone = weakref.ref(first.run_chunk)
    assert trainer.make_train(qlax.TrainConfig(num_centers=3, lr=0.5)).run_chunk is first.run_chunk  # dynamic: shared
    del first
    for centers in range(4, 4 + KEPT):
        trainer.make_train(qlax.TrainConfig(num_centers=centers))
    gc.collect()
    assert gone() is None and len(trainer._PROGRAMS) <= KEPT
