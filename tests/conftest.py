"""Fixtures shared by every test: unique shared-memory names, isolated data directories."""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest


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
