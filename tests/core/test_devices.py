"""JAX's CPU devices as qlax asks for them."""

import os
import subprocess
import sys

import pytest

STARTED_FIRST = "import gymnax, jax; import qlax; print(jax.device_count())"  # gymnax starts JAX when imported


@pytest.mark.slow
def test_a_device_count_jax_started_with_before_qlax_is_kept_and_said():
    done = subprocess.run([sys.executable, "-c", STARTED_FIRST], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QLAX_CPU_DEVICES": "2"})
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    assert ("JAX started before qlax was imported, with 1 CPU device(s) where qlax would use 2, so training uses "
            "fewer cores; import qlax first") in done.stderr


@pytest.mark.slow
def test_qlax_imported_first_gets_the_device_count_it_asks_for_without_a_word():
    done = subprocess.run([sys.executable, "-c", "import qlax, gymnax, jax; print(jax.device_count())"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "QLAX_CPU_DEVICES": "3"})
    assert done.returncode == 0 and done.stdout.strip() == "3" and "JAX started" not in done.stderr, done.stderr
