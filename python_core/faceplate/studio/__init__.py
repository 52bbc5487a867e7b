"""Faceplate Studio: a local web app to review facesets, fix alignments and label masks.

A client of the same layers as ``faceplate.cli``: :mod:`~faceplate.studio.workspace` opens the
stores and facesets, :mod:`~faceplate.studio.stores` and :mod:`~faceplate.studio.facesets` edit
them through ``faceplate.io``, ``faceplate.extract`` and ``faceplate.faceset``,
:mod:`~faceplate.studio.server` serves the JSON API and the page in ``static/``.
"""
