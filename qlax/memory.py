"""Memory a population will hold, planned from shapes before anything is compiled.

Per member: the replay buffer (capacity x bytes per stored transition), the parameters
with their target copy and optimizer state, the environment states and observations,
and the rest (episode records, n-step window, keys, counters). The check compares what
one device holds (on a CPU, what this process holds, since its devices share the host's
RAM) with a limit: by default 80% of the device's memory, or of host RAM on a CPU.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import jax

from qlax import prioritized
from qlax.config import ConfigError, short

DEFAULT_FRACTION = 0.8
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per member by part, and how many members one device (or this process) holds."""

    replay: int
    learner: int
    environment: int
    other: int
    replay_rows: int
    row_bytes: int
    members: int  # members held where the limit applies
    where: str  # "per device" or "in this process"

    @property
    def per_member(self) -> int:
        return self.replay + self.learner + self.environment + self.other

    @property
    def total(self) -> int:
        return self.members * self.per_member

    def describe(self) -> str:
        return (f"{self.members} members x {size_text(self.per_member)} = {size_text(self.total)} {self.where} "
                f"(per member: replay {size_text(self.replay)} = {self.replay_rows:,} transitions x "
                f"{self.row_bytes} B; parameters, target, optimizer and best policy {size_text(self.learner)}; "
                f"environments {size_text(self.environment)}; other {size_text(self.other)})")


def plan(template, members_here: int, where: str) -> MemoryPlan:
    """The plan for a one-member `template` (a TrainState of ShapeDtypeStructs, no member axis);
    an algorithm without replay (PQN) plans none."""
    buffer = getattr(template.agent, "replay", None)
    storage = None if buffer is None else \
        (buffer.replay if isinstance(buffer, prioritized.PrioritizedState) else buffer).storage
    replay = _bytes(buffer)
    learner = _bytes((template.agent.learner, template.best))
    environment = _bytes((template.env_state, template.obs))
    return MemoryPlan(replay=replay, learner=learner, environment=environment,
                      other=_bytes(template) - replay - learner - environment,
                      replay_rows=0 if storage is None else storage.shape[0],
                      row_bytes=0 if storage is None else storage.shape[1] * storage.dtype.itemsize,
                      members=members_here, where=where)


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
    """Refuse a population that would not fit, naming the numbers and what to shrink."""
    if memory.total <= allowed:
        return
    raise ConfigError(
        f"the population needs {size_text(memory.total)} {memory.where}, more than the {size_text(allowed)} "
        f"allowed ({source}): {memory.describe()}. Shrink buffer_size (the replay is "
        f"{memory.replay / memory.per_member:.0%} of it), the number of members (settings x seeds), "
        f"num_envs or the network, or raise --max-memory")


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
