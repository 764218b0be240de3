import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # test helpers such as probe_envs

# One compilation cache per test session, shared with the session's subprocesses, so a
# session never loads programs that another session (another checkout, other code) wrote.
if "QLAX_COMPILATION_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="qlax-test-jax-cache-")
    os.environ["QLAX_COMPILATION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, True)
