import atexit
import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers such as probe_envs

# One compilation cache per test session, shared with the session's subprocesses, so a
# session never loads programs that another session (another checkout, other code) wrote.
if "QLAX_COMPILATION_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="qlax-test-jax-cache-")
    os.environ["QLAX_COMPILATION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, True)


@pytest.fixture(autouse=True, scope="module")
def free_compiled_programs():
    """Drop every compiled program when a test module ends. Tests within a module share
    programs; across the whole suite one process compiled so many that XLA's CPU compiler
    segfaulted at the 460th test (three CI runs, the same test each time)."""
    yield
    from qlax import evaluate, trainer

    trainer._PROGRAMS.clear()
    trainer._POPULATIONS.clear()
    evaluate._EVALUATORS.clear()
    import jax

    jax.clear_caches()
    gc.collect()
