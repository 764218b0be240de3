import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # test helpers such as probe_envs

# No persistent compilation cache in the test suite (its subprocesses inherit this): twice,
# on CI runs of the whole suite, XLA segfaulted serializing or loading a cached CPU
# program at the same test after 459 others (JAX 0.10.2); without the cache it never loads
# or writes one. Whether qlax turns the cache on is tested on its own.
os.environ.setdefault("QLAX_COMPILATION_CACHE", "off")
