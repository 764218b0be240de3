import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers such as probe_envs


# Most tests compile small programs and run them for moments: for them XLA's optimizations
# cost more than they give (a suite run with JAX_DISABLE_MOST_OPTIMIZATIONS=1 compiled in 572 s
# what took 926 s). Tests that train to a result (marked `learning`) compile with XLA's
# optimizations (LLVM at -O1, see the flags below): at -O0 their runs take up to 4.5x as
# long. Subprocesses inherit the choice through the environment. A level the person set
# themselves is kept.
# xdist's workers inherit the level this file set in the controller: a marker tells it apart.
_OWN_LEVEL = "JAX_DISABLE_MOST_OPTIMIZATIONS" in os.environ and "QLAX_TESTS_SET_LEVEL" not in os.environ


def _optimize(full: bool) -> None:
    """XLA's level for what this process compiles next, and for the subprocesses it starts."""
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "0" if full else "1"
    if "jax" in sys.modules:  # else JAX reads the variable when it is imported
        sys.modules["jax"].config.update("jax_disable_most_optimizations", not full)


if not _OWN_LEVEL:
    os.environ["QLAX_TESTS_SET_LEVEL"] = "1"
    _optimize(full=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before the test's fixtures, so a module's shared run compiles as its first test asks."""
    if not _OWN_LEVEL:
        _optimize(item.get_closest_marker("learning") is not None)


# Two XLA flags for the whole suite, each kept where the person set it themselves. XLA reads
# its flags once per process, before JAX starts, so the suite chooses once, for itself and
# its subprocesses:
# - XLA's CPU fusion emitters compile slowly and win nothing on runs this short. Off, the
#   whole suite took 518 s instead of 633 s and the quick set 73 s instead of 104 s; the
#   learning tests pay for it (217 s instead of 184 s in one process, cartpole-rainbow 41 s
#   instead of 22 s).
# - LLVM at -O1 instead of -O2 for the fully optimized programs of the learning tests (the
#   rest compile at -O0 all the same): they took 186 s instead of 242 s in one process,
#   every one of them faster, compiles about a third shorter and runs as fast.
_SUITE_XLA_FLAGS = {"--xla_cpu_use_fusion_emitters": "false", "--xla_backend_optimization_level": "1"}
for _flag, _value in _SUITE_XLA_FLAGS.items():
    if _flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}={_value}".strip()

# Compiled programs are shared by the whole suite: qlax keeps the last few it built
# (`qlax.core.program_cache`), so a process never runs out of memory mappings as it once did.

# One temporary directory per test session, removed when the session's first process exits:
# - the temporary files of every process the session starts go there (TMPDIR). xdist's
#   workers end with os._exit (below), which skips the clean-up of what their libraries
#   made: wandb's two temporary directories were left in /tmp by every suite run;
# - one compilation cache, shared with the session's subprocesses, so a session never loads
#   programs that another session (another checkout, other code) wrote.
if "QLAX_TESTS_TMPDIR" not in os.environ:
    _session_dir = tempfile.mkdtemp(prefix="qlax-tests-")
    os.environ["QLAX_TESTS_TMPDIR"] = os.environ["TMPDIR"] = _session_dir
    atexit.register(shutil.rmtree, _session_dir, True)
    if "QLAX_COMPILATION_CACHE" not in os.environ:
        os.environ["QLAX_COMPILATION_CACHE"] = os.path.join(_session_dir, "jax-cache")

# Two CPU devices in every test process, as `import qlax` gives a 2-core machine, so the
# tests of sharded paths (a PBT copy across devices, checkpoints written from each device's
# rows) test what they say. Without this the count was an accident of import order: a test
# module that imports gymnax before qlax starts JAX with one device, and every later test in
# that process ran on it. A person's own QLAX_CPU_DEVICES or device flag is kept.
os.environ.setdefault("QLAX_CPU_DEVICES", "2")


def _runs_no_tests(config) -> bool:
    """pytest-xdist's controller: it hands the tests to its workers and runs none itself."""
    return getattr(config.option, "dist", "no") != "no" and not config.getvalue("collectonly")


def _rewrite_only_our_asserts(config) -> None:
    """pytest rewrites the asserts of every module of each installed plugin's distribution
    (hypothesis, anyio, typeguard, platformdirs, xdist), and where PYTHONDONTWRITEBYTECODE
    is set it cannot cache what it rewrote: every process that imported hypothesis rewrote
    its modules again, 3 s of the 7.4 s that collecting the suite took. The tests' own
    modules and conftest files are rewritten all the same (pytest matches them by name);
    only the plugins' marks are dropped. pytest has no public way to drop them, so an
    attribute it does not have (another pytest) leaves everything as it was."""
    marked = getattr(getattr(config.pluginmanager, "rewrite_hook", None), "_must_rewrite", None)
    if isinstance(marked, set):
        marked.clear()


def pytest_configure(config):
    """Import qlax before any test module, in every process that runs tests (the controller
    skips it: 1.4 s before its workers start)."""
    _rewrite_only_our_asserts(config)
    if _runs_no_tests(config):
        return
    import qlax  # noqa: F401  (sets the device count before any test module starts JAX)
    from qlax.envs import gymnax_adapter

    # Every xdist worker collects every test module. Test modules import gymnax themselves
    # (probe environments, second implementations), and gymnax imports seaborn, SciPy's
    # statistics and matplotlib for renderers no test calls (4.3 s): they load on first use
    # instead, as they do when qlax imports gymnax. With navix, Jumanji, EnvPool and rlax
    # imported by their tests (tests/optional.py), collecting the suite takes 9.2 s instead
    # of 15.8 s in one process.
    gymnax_adapter.defer_rendering_modules()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """An xdist worker ends as soon as its results are sent (xdist has them at its
    `workerfinished`), without tearing down an interpreter that holds hundreds of compiled
    programs: the controller waited 5 s for that at the end of the quick set, 0.9 s since."""
    if hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
