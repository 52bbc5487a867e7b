"""Builds the ``faceplate`` Python package from ``python_core/`` (metadata in pyproject.toml).

One C extension: ``faceplate.extract._ert``, the regression-tree shape predictor evaluator
(:mod:`faceplate.extract.ert`); plain C99 against Python's C API, no other headers.
"""

from setuptools import Extension, find_packages, setup

setup(
    package_dir={"": "python_core"},
    packages=find_packages("python_core"),
    package_data={"faceplate": ["py.typed", "extract/_ert.pyi", "studio/static/*",
                               "evaluate/detection/*.json", "io/sample_labels/*.json"]},
    ext_modules=[
        Extension("faceplate.extract._ert", ["python_core/faceplate/extract/_ert.c"],
                  extra_compile_args=["-O3", "-std=c99"]),
    ],
)
