"""The whole `qlax train` command against its compiled program alone, and time to the first
progress line with a cold and a warm compilation cache, in one run.

    python benchmarks/host_loop.py [--seeds 32] [--repeats 2]

1. Throughput. `benchmarks/population.py`'s measurement (the compiled chunk of 32
   `cartpole-rbf` seeds, early stop off, timed back to back) against the env steps/s that
   `qlax train cartpole-rbf --seeds 32 --no-early-stop` writes to summary.json (training time:
   the host loop with its metrics, progress lines and checkpoints, compile excluded). They
   take turns, `--repeats` times each. Goal: the command at least 95% of the program alone.
2. Start-up. Seconds from launching `qlax train cartpole-rbf` to its first progress line,
   first with an empty compilation cache, then again with the cache that run filled.
   Goal: the warm start within 4 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import emit
from population import cartpole_rbf_config
from seed_loop import measure_qlax

THROUGHPUT_GOAL = 0.95
FIRST_LINE_GOAL_S = 4.0


def command_throughput(seeds: int, cache: str) -> float:
    """summary.json's env_steps_per_s of one `qlax train cartpole-rbf --no-early-stop` command."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "qlax.tools.cli", "train", "cartpole-rbf", "--seeds", str(seeds),
                        "--no-early-stop", "--out", f"{out}/run"], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "QLAX_COMPILATION_CACHE": cache})
        return json.loads(Path(f"{out}/run/summary.json").read_text())["env_steps_per_s"]


def first_progress_line_s(cache: str) -> float:
    """Seconds from launching `qlax train cartpole-rbf` to its first chunk's progress line."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "qlax.tools.cli", "train", "cartpole-rbf", "--seeds", "32",
                                 "--out", f"{out}/run"], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "QLAX_COMPILATION_CACHE": cache, "PYTHONUNBUFFERED": "1"})
        for line in proc.stdout:
            if "env steps/seed" in line:
                elapsed = time.perf_counter() - started
                break
        proc.kill()
        proc.wait()
        return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="turns of each throughput measurement")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        program, command = [], []
        for _ in range(args.repeats):
            program.append(measure_qlax(cartpole_rbf_config(args.seeds), 8, f"program alone, {args.seeds} seeds")
                           ["steps_per_s"])
            command.append(command_throughput(args.seeds, cache))
            print(f"  qlax train command: {command[-1]:,.0f} env steps/s", flush=True)
        ratio = statistics.median(command) / statistics.median(program)
        print(f"command / program alone: {ratio:.3f}   goal >= {THROUGHPUT_GOAL}: "
              f"{'met' if ratio >= THROUGHPUT_GOAL else 'NOT met'}", flush=True)

    with tempfile.TemporaryDirectory() as cache:
        cold = first_progress_line_s(cache)
        warm = first_progress_line_s(cache)
    print(f"first progress line: cold cache {cold:.1f} s, warm cache {warm:.1f} s   goal (warm) <= "
          f"{FIRST_LINE_GOAL_S} s: {'met' if warm <= FIRST_LINE_GOAL_S else 'NOT met'}", flush=True)
    emit({"benchmark": "host_loop", "seeds": args.seeds, "program_steps_per_s": [round(p, 1) for p in program],
          "command_steps_per_s": command, "ratio": round(ratio, 3), "goal_ratio": THROUGHPUT_GOAL,
          "first_line_cold_s": round(cold, 2), "first_line_warm_s": round(warm, 2),
          "goal_first_line_s": FIRST_LINE_GOAL_S})


if __name__ == "__main__":
    main()
