"""Packages and the optional C kernel; all other metadata is in pyproject.toml.

The prompt templates live at the top level (prompts/, data rather than code) and ship in the
wheel as the package `companion.prompts`.
"""

from setuptools import Extension, find_packages, setup

setup(
    packages=[*find_packages(include=["companion", "companion.*"]), "companion.prompts"],
    package_dir={"companion.prompts": "prompts"},
    package_data={
        "companion": ["py.typed", "data/*.json", "audit/*.pyi"],
        "companion.prompts": ["*.md"],
    },
    ext_modules=[
        Extension(
            "companion.audit._fused",
            ["companion/audit/_fused.c"],
            # Fixed summation order, no FMA contraction: the same bits on every machine.
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,  # without a C compiler, the numpy path in kernel.py is used
        )
    ],
)
