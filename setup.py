"""Build the optional C kernel (companion/audit/_fused.c); all other metadata is in pyproject."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "companion.audit._fused",
            ["companion/audit/_fused.c"],
            # Fixed summation order, no FMA contraction: the same bits on every machine.
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,  # without a C compiler, the numpy path in kernel.py is used
        )
    ]
)
