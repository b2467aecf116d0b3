"""Only the native extension lives here; everything else about the package is in pyproject.toml.

``protocol._native`` (keccak-256 and batch sender recovery, one GIL release per batch)
needs a C compiler and the Python headers at install time, nothing else: libsecp256k1 is
coincurve's, reached through function addresses at run time.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "protocol._native",
            sources=["protocol/_native.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
