import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # test helpers such as probe_envs


def pytest_configure(config):
    """The quick set (-m "not slow") is mostly compiling small programs, which LLVM at -O0
    does about a third faster. The learning tests run much slower at -O0 (a Rainbow run:
    4x), so any run with them keeps XLA's default, as users' programs do. Set before
    anything starts JAX's backends."""
    quick = "not slow" in (config.option.markexpr or "")
    if quick and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

# Compiled programs are shared by the whole suite: qlax keeps the last few it built
# (`qlax.core.program_cache`), so a process never runs out of memory mappings as it once did.

# One compilation cache per test session, shared with the session's subprocesses, so a
# session never loads programs that another session (another checkout, other code) wrote.
if "QLAX_COMPILATION_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="qlax-test-jax-cache-")
    os.environ["QLAX_COMPILATION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, True)
