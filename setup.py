"""Builds the ``faceplate`` Python package from ``python_core/`` (metadata in pyproject.toml)."""

from setuptools import find_packages, setup

setup(
    package_dir={"": "python_core"},
    packages=find_packages("python_core"),
    package_data={"faceplate": ["py.typed"]},
)
