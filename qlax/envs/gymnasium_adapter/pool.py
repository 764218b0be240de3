"""Copies of a Gymnasium environment stepped in worker processes, one per CPU core."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import weakref

import numpy as np

from qlax.envs.base import EnvError
from qlax.envs.gymnasium_adapter.source import Source
from qlax.envs.gymnasium_adapter.vector import Record, Vector


def _work(pipe, source: Source, count: int, parts, dtype: np.dtype) -> None:
    """A worker process of `Pool`: a `Vector` of `count` copies, run by commands from the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt stops
    envs = None
    try:
        envs = Vector(source.vector(count), parts, dtype)
        pipe.send((True, None))
        while True:
            command, args = pipe.recv()
            if command == "close":
                break
            try:
                pipe.send((True, getattr(envs, command)(*args)))
            except Exception as err:  # noqa: BLE001 (sent to the parent, which raises it)
                pipe.send((False, f"{type(err).__name__}: {err}"))
    except EOFError:  # the parent is gone
        pass
    except Exception as err:  # noqa: BLE001
        pipe.send((False, f"{type(err).__name__}: {err}"))
    finally:
        if envs is not None:
            envs.close()


def _close_pool(pipes, processes) -> None:
    for pipe in pipes:
        try:
            pipe.send(("close", ()))
        except OSError:
            pass
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()


class Pool:
    """`n` copies over `workers` processes, each stepping a SyncVectorEnv of its share, read as
    `Record`s like `Vector`. Gymnasium's AsyncVectorEnv takes a process per copy; a
    population has members x num_envs copies, so qlax groups them, one process per core."""

    def __init__(self, source: Source, n: int, workers: int, parts, dtype: np.dtype):
        context = multiprocessing.get_context("spawn")  # no fork of a process running JAX's threads
        self.slices = [slice(int(s[0]), int(s[-1]) + 1) for s in np.array_split(np.arange(n), workers)]
        self.pipes, self.processes = [], []
        for part in self.slices:
            parent, child = context.Pipe()
            process = context.Process(target=_work, args=(child, source, part.stop - part.start, parts, dtype),
                                      daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        self.name = source.name
        self._finalizer = weakref.finalize(self, _close_pool, self.pipes, self.processes)
        self._gather()

    def _gather(self) -> list:
        """Each worker's answer; a worker that died is an error, however its pipe ends (closed,
        reset, or open with nothing more to come)."""
        results = []
        for pipe, process in zip(self.pipes, self.processes):
            try:
                if pipe not in multiprocessing.connection.wait([pipe, process.sentinel]):
                    raise EOFError
                ok, value = pipe.recv()
            except (EOFError, OSError):
                process.join(timeout=1)
                ok, value = False, f"the worker process died (exit code {process.exitcode})"
            if not ok:
                raise EnvError(f"env '{self.name}': a worker process failed: {value}")
            results.append(value)
        return results

    def _ask(self, command: str, parts_args) -> list:
        """Send each worker its command, then gather the answers (a dead worker's pipe may
        refuse the command: `_gather` names the death)."""
        for pipe, args in zip(self.pipes, parts_args):
            try:
                pipe.send((command, args))
            except OSError:
                pass
        return self._gather()

    def reset(self, seeds: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return np.concatenate(self._ask("reset", [(seeds[part], None if mask is None else mask[part])
                                                  for part in self.slices]))

    def step(self, actions: np.ndarray) -> Record:
        answers = self._ask("step", [(actions[part],) for part in self.slices])
        return Record(*(np.concatenate(fields) for fields in zip(*answers)))

    def close(self) -> None:
        self._finalizer()
