"""JAX's devices as qlax wants them: one per CPU core, and joining a multi-process run and
agreeing across its processes (who writes, whether any process was interrupted).

XLA runs one CPU device's program mostly on one thread; with a device per core, the
member axis is sharded across them (`qlax.placement`) and a 2-core machine trains
about twice as fast. This must happen before JAX starts its backends, so `import qlax`
does it; set QLAX_CPU_DEVICES=N to choose N, or configure JAX yourself first
(`jax_num_cpu_devices` or XLA_FLAGS=--xla_force_host_platform_device_count=N), and
qlax leaves it alone.
"""

from __future__ import annotations

import os

import jax
import numpy as np


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def use_every_cpu_core() -> None:
    """Ask JAX for one CPU device per core, unless the user already chose a count."""
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    if jax.config.jax_num_cpu_devices != -1:  # set by the user's code
        return
    wanted = int(os.environ.get("QLAX_CPU_DEVICES", cpu_cores()))
    try:
        jax.config.update("jax_num_cpu_devices", max(wanted, 1))
    except RuntimeError:
        pass  # JAX already started its backends in this process: keep what it has


def compilation_cache_dir() -> str | None:
    """Where compiled programs are kept between runs: QLAX_COMPILATION_CACHE (a directory, or
    `off`), else qlax/jax under the user's cache directory (XDG_CACHE_HOME or ~/.cache)."""
    chosen = os.environ.get("QLAX_COMPILATION_CACHE")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "0", "off", "false", "no") else chosen
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "qlax", "jax")


def use_compilation_cache() -> None:
    """Turn on JAX's persistent compilation cache, so a second run of the same program skips
    XLA's compile (seconds on a CPU); unless the user configured one already, or turned it off."""
    if jax.config.jax_compilation_cache_dir is not None:
        return
    path = compilation_cache_dir()
    if path is None:
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def join_processes(coordinator: str | None = None, num_processes: int | None = None,
                   process_id: int | None = None) -> None:
    """Join a run of several processes (one per host) with `jax.distributed.initialize`.

    Without arguments JAX detects the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU);
    otherwise give all three. Processes on CPUs talk over gloo. Call it before anything
    runs on JAX.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)


def is_writer() -> bool:
    """Whether this process writes the run's files (process 0 of a multi-process run)."""
    return jax.process_index() == 0


def any_process(flag: bool) -> bool:
    """Whether `flag` is set in any process: every process must take the same branch."""
    if jax.process_count() == 1:
        return flag
    return bool(np.any(_multihost().process_allgather(np.array([flag]))))


def barrier(name: str) -> None:
    """Return once every process reached the barrier `name` (at once with one process)."""
    if jax.process_count() > 1:
        _multihost().sync_global_devices(name)


def _multihost():
    from jax.experimental import multihost_utils

    return multihost_utils
