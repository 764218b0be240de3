"""The memory plan against what a `qlax train` process really holds at its peak.

    python benchmarks/memory_plan.py [--cases dqn-32 rbf-32 dqn-32-nstep rbf-1000]

Each case is one `qlax train` command in a child process, with the compilation cache off
(compiling is part of the peak) and a checkpoint after every chunk. Its plan is the total
of the `memory:` line it prints before compiling; its peak is the child's peak resident
set (`ru_maxrss` from `os.wait4`). Each replay buffer fills up within the budget, so
every page the plan counts is touched; the n-step case's window, shifted every step, is
touched whole (its budget is shorter than the window: nothing reaches its small buffer).
Goal: peak / plan <= 1.5 for each case. About 20 minutes on 2 busy cores, most of them
the 1,000 members.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

from _timing import emit

from qlax.program.memory import parse_size, size_text

GOAL = 1.5
CASES = {
    "dqn-32": ["cartpole-dqn", "--seeds", "32", "--steps", "60000", "--no-early-stop"],
    "rbf-32": ["cartpole-rbf", "--seeds", "32", "--steps", "112000", "--no-early-stop"],
    "dqn-32-nstep": ["cartpole-dqn", "--seeds", "32", "--steps", "8000", "--no-early-stop", "--set", "n_step=10000",
                     "--set", "buffer_size=2000"],
    "rbf-1000": ["cartpole-rbf", "--seeds", "1000", "--steps", "20800", "--no-early-stop",
                 "--set", "buffer_size=20000"],
}


def measure(args: list[str]) -> tuple[int, int]:
    """(planned bytes, peak resident bytes) of `qlax train ARGS` in a child process."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.Popen([sys.executable, "-m", "qlax.tools.cli", "train", *args, "--checkpoint-every", "1",
                                 "--out", f"{out}/run"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "QLAX_COMPILATION_CACHE": "off", "PYTHONUNBUFFERED": "1"})
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"qlax train {' '.join(args)} failed:\n{output[-2000:]}")
    planned = re.search(r"^memory: .*? = ([0-9.]+ [kMGT]?B) in this process", output, re.M).group(1)
    return parse_size(planned.replace(" ", "")), usage.ru_maxrss * 1024  # Linux: kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    results = {}
    for name in args.cases:
        planned, peak = measure(CASES[name])
        ratio = peak / planned
        results[name] = {"planned_bytes": planned, "peak_rss_bytes": peak, "ratio": round(ratio, 3)}
        print(f"{name:>12}: planned {size_text(planned):>9}  peak RSS {size_text(peak):>9}  peak/plan {ratio:.2f}  "
              f"{'ok' if ratio <= GOAL else 'over the goal'} (<= {GOAL})", flush=True)
    emit({"benchmark": "memory_plan", "goal": GOAL, "cases": results,
          "met": all(r["ratio"] <= GOAL for r in results.values())})


if __name__ == "__main__":
    main()
