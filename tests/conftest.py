import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # test helpers such as probe_envs

# The suite's programs are small and run briefly, so compiling them is most of its time: LLVM
# at -O0 compiles them about a third faster, and the learning tests run faster in all
# (cartpole-dqn's solve test: 17.5 s -> 11.5 s). Users' programs keep XLA's default.
# QLAX_TEST_XLA_DEFAULT=1 runs the suite as users' programs are compiled.
if not os.environ.get("QLAX_TEST_XLA_DEFAULT") and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

# Compiled programs are shared by the whole suite: qlax keeps the last few it built
# (`qlax.program_cache`), so a process never runs out of memory mappings as it once did.

# One compilation cache per test session, shared with the session's subprocesses, so a
# session never loads programs that another session (another checkout, other code) wrote.
if "QLAX_COMPILATION_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="qlax-test-jax-cache-")
    os.environ["QLAX_COMPILATION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, True)
