"""The C part of the package: gateway.content._scan, the content normaliser and phrase matcher (see its source).

Everything else is in pyproject.toml. `pip install -e .` (scripts/bootstrap) builds the extension next to its
source, in gateway/content/, where both the installed package and a checkout put on sys.path (mitmdump's addons)
import it.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gateway.content._scan",
            sources=["gateway/content/_scan.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
        )
    ]
)
