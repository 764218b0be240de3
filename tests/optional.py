"""Skip marks for the tests of optional packages that leave the import to the tests.

Every xdist worker collects every test module, so a package imported at a module's top is
imported by every worker; navix, Jumanji and EnvPool take 1-4 s each, which only the
worker that runs their tests should pay."""

import importlib.util

import pytest


def needs(*packages: str) -> pytest.MarkDecorator:
    """Skip where one of `packages` is not installed, without importing any of them."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")
