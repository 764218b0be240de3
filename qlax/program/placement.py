"""Where a population's members live: their axis split over every device of every process.

Members are independent, so the member axis is sharded over a one-axis `Mesh` of
devices with `NamedSharding`, and each device trains its share with no communication.
With several processes (`jax.distributed.initialize`, one per host) the mesh spans the
devices of all of them: each process holds and trains a slice of the global population,
and results are gathered to every process, of which process 0 writes the files.

A population that does not divide among the devices is padded with copies of its last
member, whose results are dropped: `Placement.note` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "members"


@dataclass(frozen=True)
class Placement:
    """How `members` members are laid out: `padded` rows over the devices of `sharding`."""

    members: int
    padded: int
    sharding: NamedSharding

    @property
    def devices(self) -> int:
        return self.sharding.mesh.devices.size

    @property
    def layout(self) -> dict:
        """What a run's numbers depend on beyond its settings: the devices' kind and count,
        the processes and the padded rows. Saved in each checkpoint's manifest; a run resumed
        on another layout goes on correctly, but not bit for bit as it would have."""
        device = self.sharding.mesh.devices.flat[0]
        return {"platform": device.platform, "device_kind": device.device_kind, "devices": self.devices,
                "processes": jax.process_count(), "padded": self.padded}

    def layout_change(self, saved: dict | None) -> str | None:
        """A line when a checkpoint saved on layout `saved` is resumed on another; None if the
        same (or a checkpoint that recorded none)."""
        if not isinstance(saved, dict) or saved == self.layout:
            return None
        differ = ", ".join(f"{k} {saved.get(k)} -> {v}" for k, v in self.layout.items() if saved.get(k) != v)
        return (f"note: this run was saved on another device layout ({differ}); it goes on correctly, but "
                f"not bit for bit as it would have on its own layout")

    @property
    def note(self) -> str | None:
        """A line for the user when the population was padded; None otherwise."""
        extra = self.padded - self.members
        if not extra:
            return None
        return (f"{self.members} members do not divide among {self.devices} devices: padded with {extra} "
                f"cop{'y' if extra == 1 else 'ies'} of the last member, whose results are dropped")

    def put(self, tree: Any) -> Any:
        """Host arrays with a leading axis of `members` rows -> global arrays of `padded` rows, sharded."""
        def one(leaf):
            leaf = np.asarray(leaf)
            if leaf.shape[0] != self.members:
                raise ValueError(f"expected {self.members} members along the first axis, got {leaf.shape}")
            if self.padded > self.members:
                leaf = np.concatenate([leaf, np.repeat(leaf[-1:], self.padded - self.members, axis=0)])
            return jax.make_array_from_callback(leaf.shape, self.sharding, lambda index: leaf[index])
        return jax.tree.map(one, tree)

    def gather(self, tree: Any) -> Any:
        """Global arrays -> numpy arrays of the `members` real rows, on every process."""
        if jax.process_count() > 1:
            tree = multihost_utils.process_allgather(tree, tiled=True)
        return jax.tree.map(lambda leaf: np.asarray(leaf)[:self.members], jax.device_get(tree))

    @property
    def local_rows(self) -> range:
        """The global rows this process holds (every row with one process)."""
        ids = {d.id for d in jax.local_devices()}
        devices = list(self.sharding.mesh.devices.flat)
        per_device = self.padded // len(devices)
        mine = [i for i, d in enumerate(devices) if d.id in ids]
        return range(mine[0] * per_device, (mine[-1] + 1) * per_device)

    def from_local(self, tree: Any) -> Any:
        """This process's rows, as numpy -> global arrays (all rows with one process)."""
        if jax.process_count() == 1:
            return jax.device_put(tree, self.sharding)
        return multihost_utils.host_local_array_to_global_array(tree, self.sharding.mesh, PartitionSpec(AXIS))


def place(members: int, one_device: bool = False) -> Placement:
    """The layout of `members` members over the devices JAX sees.

    With one process, a population smaller than the device count uses one device per
    member; a larger one is padded to a multiple of the device count. With several
    processes every device takes part (each process must hold a share), so the
    population is padded to a multiple of the global device count. `one_device`: all
    members on the first device (an environment stepped outside XLA, on the host, steps
    every member's envs in one call, which XLA cannot split over devices).
    """
    if members < 1:
        raise ValueError(f"a population needs at least 1 member, got {members}")
    devices = jax.devices()
    if one_device:
        devices = devices[:1]
    elif jax.process_count() == 1 and members < len(devices):
        devices = devices[:members]
    padded = -(-members // len(devices)) * len(devices)
    mesh = Mesh(np.array(devices), (AXIS,))
    return Placement(members=members, padded=padded, sharding=NamedSharding(mesh, PartitionSpec(AXIS)))
