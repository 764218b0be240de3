"""The suite's own harness: which tests compile with XLA's optimizations, with which XLA flags,
and on how many devices every test runs."""

import os
import tempfile

import jax
import pytest


def test_a_short_test_compiles_at_o0_and_its_subprocesses_too():
    assert jax.config.values["jax_disable_most_optimizations"]
    assert os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] == "1"


@pytest.mark.learning
def test_a_learning_test_compiles_fully_optimized_and_its_subprocesses_too():
    assert not jax.config.values["jax_disable_most_optimizations"]
    assert os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] == "0"


def test_every_test_process_has_two_cpu_devices_whatever_its_modules_imported_first():
    # tests/algorithms/ is collected first, and it imports gymnax (which starts JAX) before qlax
    assert jax.device_count() == int(os.environ["QLAX_CPU_DEVICES"])


def test_the_suites_xla_flags_reach_every_process_it_starts():
    flags = dict(flag.split("=", 1) for flag in os.environ["XLA_FLAGS"].split() if "=" in flag)
    assert flags.keys() >= {"--xla_cpu_use_fusion_emitters", "--xla_backend_optimization_level"}


def test_test_processes_keep_their_temporary_files_in_the_sessions_directory():
    session_dir = os.environ["QLAX_TESTS_TMPDIR"]
    assert os.environ["TMPDIR"] == session_dir and os.environ["QLAX_COMPILATION_CACHE"].startswith(session_dir)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker process started after the session's directory was made
        assert tempfile.gettempdir() == session_dir
