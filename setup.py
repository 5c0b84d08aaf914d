"""Build the Cython state kernels into the flashalpha package.

Everything else about the package lives in pyproject.toml; this file only exists because
setuptools needs code to describe compiled extensions. Cython warnings are errors, and
`FLASHALPHA_ANNOTATE=1` writes the HTML annotation that shows where Python calls remain.
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "flashalpha._state_kernels",
        ["cython/flashalpha/_state_kernels.pyx"],
        include_dirs=[numpy.get_include(), "cython/flashalpha"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", "-Wall", "-Wno-unused-function", "-Wno-unreachable-code"],
    ),
    Extension(
        "flashalpha._thetadata_scan",
        ["cython/flashalpha/_thetadata_scan.pyx"],
        extra_compile_args=["-O3", "-Wall", "-Wno-unused-function", "-Wno-unreachable-code"],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        include_path=["cython"],
        annotate=os.environ.get("FLASHALPHA_ANNOTATE") == "1",
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "warn.unused": True,
            "warn.unused_arg": False,
            "warn.maybe_uninitialized": True,
        },
    ),
)
