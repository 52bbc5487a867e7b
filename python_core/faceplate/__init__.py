"""Faceplate: face replacement for film and video post-production.

The package is layered so that data flows one way (see DESIGN.md):
``core`` (pure NumPy) <- ``io`` (files) <- ``extract`` / ``faceset`` <- ``cli``.
"""

__version__ = "0.1.0"
