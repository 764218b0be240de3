"""The Stable-Baselines3 venv the SB3 comparisons run in, and running a worker there.

benchmarks/.venv-sb3 holds SB3, PyTorch and Gymnasium (no qlax): each comparison's
worker runs there as a subprocess and prints one JSON line. It is made on first use and
reused while it imports what the caller needs; a caller that needs more packages
(`transfer.py`: Box2D, gymnax, navix, Jumanji and JAX) names them and they are added.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SB3_VENV = HERE / ".venv-sb3"
SB3_PINS = ("stable-baselines3", "torch==2.13.0", "ale-py", "opencv-python-headless")  # the last two: Atari
SB3_IMPORTS = ("stable_baselines3", "torch", "ale_py", "cv2")


def sb3_python(extra_pins: tuple[str, ...] = (), extra_imports: tuple[str, ...] = ()) -> Path:
    """The SB3 venv's interpreter, made on first use; SB3_PINS and `extra_pins` are installed
    there unless it already imports SB3_IMPORTS and `extra_imports`."""
    exe = SB3_VENV / "bin" / "python"
    check = [exe, "-c", f"import {', '.join(SB3_IMPORTS + extra_imports)}"]
    if exe.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return exe
    if not exe.exists():
        print(f"making {SB3_VENV} ...", flush=True)
        subprocess.run([sys.executable if sys.version_info[:2] == (3, 11) else "python3.11", "-m", "venv",
                        SB3_VENV], check=True)
    pins = SB3_PINS + extra_pins
    print(f"installing {' '.join(pins)} there (a few minutes) ...", flush=True)
    subprocess.run([exe, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins], check=True)
    subprocess.run(check, check=True)
    return exe


def run_worker(worker: Path, settings: dict, python: str | Path) -> dict | None:
    """The last JSON line `worker` prints given `settings`, run by `python`; None (said why)
    if it failed."""
    result = subprocess.run([python, worker, json.dumps(settings)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        print(f"  SB3: the worker failed (exit {result.returncode}); skipped", flush=True)
        return None
    return json.loads(lines[-1])
