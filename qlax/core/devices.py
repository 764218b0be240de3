"""JAX's devices as qlax wants them: one per CPU core, and joining a multi-process run and
agreeing across its processes (who writes, whether any process was interrupted).

XLA runs one CPU device's program mostly on one thread; with a device per core, the
member axis is sharded across them (`qlax.program.placement`) and a 2-core machine trains
about twice as fast. This must happen before JAX starts its backends, so `import qlax`
does it; set QLAX_CPU_DEVICES=N to choose N, or configure JAX yourself first
(`jax_num_cpu_devices` or XLA_FLAGS=--xla_force_host_platform_device_count=N), and
qlax leaves it alone.
"""

from __future__ import annotations

import os
import warnings

import jax
import numpy as np


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


MAX_CPU_DEVICES = 4096


def cpu_devices_setting() -> tuple[int | None, str | None]:
    """(QLAX_CPU_DEVICES as a count, None) or (None, the one line that says why it is not one);
    (None, None) when it is not set."""
    text = os.environ.get("QLAX_CPU_DEVICES")
    if text is None:
        return None, None
    if text.strip().isdigit() and 1 <= int(text) <= MAX_CPU_DEVICES:
        return int(text), None
    shown = repr(text[:40]).encode("ascii", "backslashreplace").decode()
    return None, (f"QLAX_CPU_DEVICES = {shown}: expected a whole number of CPU devices from 1 to {MAX_CPU_DEVICES}, "
                  f"or unset it (one device per core)")


def use_every_cpu_core() -> None:
    """Ask JAX for one CPU device per core (QLAX_CPU_DEVICES: that many), unless the user
    already chose a count. A QLAX_CPU_DEVICES that is not a count is left for the command
    line to refuse (`cpu_devices_setting`), and one device per core is used."""
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    if jax.config.jax_num_cpu_devices != -1:  # set by the user's code
        return
    wanted = cpu_devices_setting()[0] or cpu_cores()
    try:
        jax.config.update("jax_num_cpu_devices", max(wanted, 1))
    except RuntimeError:  # JAX already started its backends in this process: keep what it has, and say so
        if jax.default_backend() == "cpu" and jax.device_count() != wanted:
            warnings.warn(f"JAX started before qlax was imported, with {jax.device_count()} CPU device(s) where "
                          f"qlax would use {wanted}, so training uses fewer cores; import qlax first (importing "
                          f"gymnax starts JAX), or set jax_num_cpu_devices yourself", stacklevel=2)


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
    from qlax.core.errors import ConfigError

    if coordinator is not None:
        host, sep, port = coordinator.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"--coordinator {coordinator[:80]!r}: expected HOST:PORT with a port from 1 to 65535")
        if num_processes is None or num_processes < 1:
            raise ConfigError(f"--num-processes {num_processes}: out of range, allowed >= 1")
        if process_id is None or not 0 <= process_id < num_processes:
            raise ConfigError(f"--process-id {process_id}: out of range, allowed 0 to {num_processes - 1}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    except (ValueError, RuntimeError) as err:  # no cluster detected, a coordinator that cannot be reached, ...
        raise ConfigError(f"joining the processes failed: {' '.join(str(err).split())[:200]}") from None


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
