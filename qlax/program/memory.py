"""Memory a population will hold, planned from shapes before anything is compiled.

Each member holds its state all through a run: the replay buffer (capacity x bytes per
stored transition), the parameters with their target copy and optimizer state, the
environment states and observations, the n-step window and the rest (episode records,
keys, counters). A chunk's input state is donated to its output, so the state is held
once, not twice. On top of it comes, at one time, the largest of what the run's steps
work with: a chunk's working memory (the update's batch and its layer activations, the
rollout, the n-step window's next copy, the greedy checks after the chunk), the greedy
evaluation after training (its episodes in rounds of `evaluation.EVAL_BATCH`, and the
returns, on the device and on the host), and a second copy of the state where a run
makes one (a resume reads its checkpoint on the host before placing it; a padded
population is cut to its members at the end). Saving a checkpoint adds nothing to plan:
it writes each array from a CPU device's own memory, or from an accelerator's in blocks
of at most 64 MB on the host (`checkpoint`).

The check compares what one device holds (on a CPU, what this process holds, since its
devices share the host's RAM) with a limit: by default 80% of the device's memory, or of
host RAM on a CPU. A process also holds JAX and XLA themselves and the compiler's work
while it compiles: on a CPU that is counted as a fixed part (`RUNTIME`, measured).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import jax
from jax.extend.core import jaxprs_in_params

from qlax.program.evaluation import EVAL_BATCH
from qlax.program.trainer import Trainer, solve_threshold
from qlax.settings.config import ConfigError, short

DEFAULT_FRACTION = 0.8
# What a CPU process holds besides its population: JAX and XLA after import, the traced
# program, and the compiler's peak while it compiles. Measured as the peak resident set of
# `qlax train PRESET --seeds 1 --steps 2000 --set buffer_size=1000 --set eval_episodes=1`
# without the compilation cache: 0.61 GB for cartpole-rbf, 0.79 for cartpole-dqn, 0.94 for
# breakout-minatar-pqn, 0.96 for cartpole-rainbow.
RUNTIME = 800_000_000
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per member by part, the fixed part, and how many members one device (or this process) holds."""

    # the state, held all through the run
    replay: int
    learner: int
    environment: int
    window: int  # the n-step window
    other: int
    # a chunk's working memory
    update: int  # a batch and its layer activations, forward and backward, with the new learner state
    rollout: int  # the transitions collected between updates, with the acting activations
    window_copy: int  # the n-step window's next copy
    greedy: int  # the greedy checks after a chunk (stop_eval_episodes)
    # the rest of a run, each at its own time
    evaluation: int  # the greedy evaluation after training (eval_episodes)
    copy: int  # a second copy of the state: resuming, or cutting padded rows off at the end
    fixed: int  # not per member: JAX, XLA and the compiler (a CPU process only)
    replay_rows: int
    row_bytes: int
    eval_episodes: int
    members: int  # members held where the limit applies
    where: str  # "per device" or "in this process"

    @property
    def state(self) -> int:
        return self.replay + self.learner + self.environment + self.window + self.other

    @property
    def chunk(self) -> int:
        return self.update + self.rollout + self.window_copy + self.greedy

    @property
    def working(self) -> int:
        """The largest of a chunk, the evaluation and a copy of the state: they never overlap."""
        return max(self.chunk, self.evaluation, self.copy)

    @property
    def per_member(self) -> int:
        return self.state + self.working

    @property
    def total(self) -> int:
        return self.fixed + self.members * self.per_member

    def parts(self) -> dict[str, tuple[int, str]]:
        """What the total is made of: name -> (bytes for all members, the setting that shrinks it)."""
        state = {"replay": (self.replay, "buffer_size"), "learner": (self.learner, "the network"),
                 "environments": (self.environment, "num_envs"), "n-step window": (self.window, "n_step"),
                 "other": (self.other, "num_envs")}
        working = max(({"update": (self.update, "batch_size"), "rollout": (self.rollout, "num_envs"),
                        "n-step window copy": (self.window_copy, "n_step"),
                        "greedy checks": (self.greedy, "stop_eval_episodes")},
                       {"evaluation": (self.evaluation, "eval_episodes")},
                       {"copy of the state": (self.copy, "buffer_size")}),
                      key=lambda part: sum(b for b, _ in part.values()))
        return {**{name: (self.members * b, setting) for name, (b, setting) in {**state, **working}.items()},
                "fixed": (self.fixed, "")}

    def short(self) -> str:
        """One short line: the total, and what it is made of at the coarsest."""
        fixed = f" + {size_text(self.fixed)} fixed" if self.fixed else ""
        return f"{size_text(self.total)} {self.where} ({self.members} members x {size_text(self.per_member)}{fixed})"

    def describe(self) -> str:
        fixed = f" + {size_text(self.fixed)} fixed (JAX, XLA, compiling)" if self.fixed else ""
        chunk = ", ".join(f"{name} {size_text(b)}" for name, b in (
            ("update", self.update), ("rollout", self.rollout), ("n-step window copy", self.window_copy),
            ("greedy checks", self.greedy)) if b)
        return (f"{self.members} members x {size_text(self.per_member)}{fixed} = {size_text(self.total)} "
                f"{self.where} (per member: replay {size_text(self.replay)} = {self.replay_rows:,} transitions x "
                f"{self.row_bytes} B; parameters, target, optimizer and best policy {size_text(self.learner)}; "
                f"environments {size_text(self.environment)}; "
                + (f"n-step window {size_text(self.window)}; " if self.window else "")
                + f"other {size_text(self.other)}; and the largest of: a chunk's working memory "
                f"{size_text(self.chunk)} ({chunk}), the evaluation of {self.eval_episodes:,} episodes "
                f"{size_text(self.evaluation)}"
                + (f", a second copy of the state {size_text(self.copy)}" if self.copy else "") + ")")


def plan(trainer: Trainer, template, members_here: int, where: str, *, copies_state: bool = False) -> MemoryPlan:
    """The plan for `trainer`'s members, `template` being one member's state (a TrainState of
    ShapeDtypeStructs, no member axis). `copies_state`: the run holds its state twice at some
    point (a resume, or a padded population). An algorithm without replay (PQN) plans none."""
    config = trainer.config
    parts = trainer.algorithm.memory_parts(template.agent)
    storage = parts.storage
    row_bytes = 0 if storage is None else storage.shape[1] * storage.dtype.itemsize
    replay = _bytes(parts.replay)
    learner = _bytes(parts.learner)
    environment = _bytes((template.env_state, template.obs))
    window = _bytes(parts.window)
    obs_bytes = _bytes(template.obs) // config.num_envs
    activations = _activation_bytes(trainer, template)
    # a distributional loss compares every pair of a sample's K atoms or quantiles, the pairs
    # its algorithm declares: K x K numbers, which XLA holds in up to six copies (measured on
    # cartpole-qrdqn)
    pairs = 4 * parts.loss_pairs
    # what one greedy episode holds: its observation, environment state, activations, return, length and flag
    episode = obs_bytes + _bytes(template.env_state) // config.num_envs + activations + 9
    rollout_steps = trainer.algorithm.rollout_steps
    samples = config.batch_size if storage is not None else rollout_steps * config.num_envs // config.num_minibatches
    checks = config.keep_best or (config.early_stop and config.stop_on == "greedy"
                                  and solve_threshold(config, trainer.env) is not None)
    state = _bytes(template)
    return MemoryPlan(
        replay=replay, learner=learner + _bytes(template.best), environment=environment, window=window,
        other=state - replay - learner - _bytes(template.best) - environment - window,
        update=samples * (max(row_bytes, 2 * obs_bytes) + 3 * activations + 6 * pairs) + 3 * learner,
        rollout=rollout_steps * config.num_envs * (max(row_bytes, 2 * obs_bytes) + obs_bytes + activations),
        window_copy=window,
        greedy=_episodes(config.stop_eval_episodes, episode) if checks else 0,
        evaluation=_episodes(config.eval_episodes, episode) + 8 * config.eval_episodes,  # on the host too
        copy=state if copies_state else 0,
        fixed=RUNTIME if where == "in this process" else 0,
        replay_rows=0 if storage is None else storage.shape[0], row_bytes=row_bytes,
        eval_episodes=config.eval_episodes, members=members_here, where=where)


def _episodes(count: int, episode: int) -> int:
    """Greedy episodes run in rounds of at most EVAL_BATCH, and their returns and lengths."""
    return min(count, EVAL_BATCH) * episode + 8 * count


def _activation_bytes(trainer: Trainer, template) -> int:
    """Bytes one observation's forward pass keeps: the outputs of its layers (XLA fuses the
    elementwise steps between them) and the patches a convolution gathers
    (`networks.Conv3x3`)."""
    params = trainer.algorithm.params(template.agent)
    one = jax.ShapeDtypeStruct((1, *template.obs.shape[1:]), template.obs.dtype)
    return _layer_bytes(jax.make_jaxpr(trainer.q_function.apply)(params, one).jaxpr)


def _layer_bytes(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("dot_general", "concatenate"):  # a layer's outputs, a convolution's patches
            out = eqn.outvars[0].aval
            total += math.prod(out.shape) * out.dtype.itemsize
        total += sum(_layer_bytes(sub) for sub in jaxprs_in_params(eqn.params))
    return total


def limit(max_memory: str | int | float | None) -> tuple[int, str]:
    """(bytes allowed, where the number comes from) for a --max-memory value or the default."""
    if max_memory is not None:
        return parse_size(max_memory), "--max-memory"
    device = jax.local_devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(DEFAULT_FRACTION * stats["bytes_limit"]), f"80% of {device.device_kind} memory"
    return int(DEFAULT_FRACTION * host_ram()), "80% of host RAM"


def check(memory: MemoryPlan, allowed: int, source: str) -> None:
    """Refuse a population that would not fit, naming the numbers and the setting of its largest part."""
    if memory.total <= allowed:
        return
    parts = memory.parts()
    fixed, _ = parts.pop("fixed")
    name, (largest, setting) = max(parts.items(), key=lambda item: item[1][0])
    what = f"The fixed part (JAX, XLA and compiling) alone is {size_text(fixed)}: raise --max-memory" \
        if fixed >= allowed else (f"{largest / memory.total:.0%} of it is the {name}: shrink {setting}, "
                                  f"or the number of members (settings x seeds), or raise --max-memory")
    raise ConfigError(f"the population needs {size_text(memory.total)} {memory.where}, more than the "
                      f"{size_text(allowed)} allowed ({source}): {memory.describe()}. {what}")


def parse_size(text: str | int | float) -> int:
    """Bytes from 4GB, 512MiB, 2e9 or a plain number."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    try:
        value = float(match.group(1)) if match else math.nan
    except ValueError:
        value = math.nan
    if unit not in _UNITS or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--max-memory = {short(text)}: expected a size such as 8GB, 512MB or 2GiB")
    return int(value * _UNITS[unit])


def host_ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _bytes(tree) -> int:
    return sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def size_text(n: float) -> str:
    """1.5 MB, 3.2 GB: bytes in decimal units."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
