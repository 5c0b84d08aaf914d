"""Fixtures shared by every test: unique shared-memory names, isolated data directories."""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (per test): a red `make test` is
# reproducible and never a new random draw. FLASHALPHA_HYPOTHESIS_PROFILE=explore searches anew
# with more examples; a failure it finds goes into the test as an @example.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=2_000)
settings.load_profile(os.environ.get("FLASHALPHA_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def shm_name():
    """A segment name no other test or daemon uses; unlinked afterwards if a test left it."""
    name = f"fa-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"/dev/shm/{name}")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An isolated FLASHALPHA_DATA_DIR."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("FLASHALPHA_DATA_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def compiled_pricing_kernels():
    """Compile the pricing kernels into numba's on-disk cache once, before any worker process
    starts: on a fresh clone every worker would otherwise compile them itself, in parallel, on
    a shared machine (a minute or more), and the tests would wait on that instead of what they
    check. Requested by the suites that start workers."""
    from flashalpha.compute.pricer import warm_up

    warm_up()
