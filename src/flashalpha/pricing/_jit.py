"""The one numba configuration of the pricing kernels.

`cache=True` so that the daemon and the workers start warm (compiled code is stored next to
the sources), `error_model="numpy"` so that a division by zero in one row yields inf/NaN like
IEEE arithmetic instead of raising and losing the whole batch, and FMA contraction (the only
fast-math flag: several kernels rely on exact rounding, NaN checks and error-free splits).

Numba validates a cached kernel against its own source file only, so a kernel whose callee
in another file changed would load stale machine code. Every kernel here is therefore stamped
with a hash of the whole pricing package: editing any of its files recompiles all of them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba import njit

_PACKAGE = Path(__file__).resolve().parent


def _package_stamp() -> str:
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


PACKAGE_STAMP = _package_stamp()


def _stamp(dispatcher):
    try:
        cache_file = dispatcher._cache._cache_file
        cache_file._source_stamp = (cache_file._source_stamp, PACKAGE_STAMP)
    except AttributeError:  # a numba without these internals: its own staleness check only
        pass
    return dispatcher


def kernel(function=None, **options):
    """`numba.njit` with the pricing defaults; `parallel=True` etc. pass through."""
    options = {"cache": True, "error_model": "numpy", "fastmath": {"contract"}, **options}
    if function is None:
        return lambda f: _stamp(njit(**options)(f))
    return _stamp(njit(**options)(function))
