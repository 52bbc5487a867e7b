"""The OpenFX side of Faceplate: the effects the host sees, their parameter schema, and the
per-frame render functions the ``faceplate-worker`` process calls.

``ofx`` is the only package that knows an OpenFX host exists. Describing the plugin never starts
Python: :func:`faceplate.ofx.schema.write_schema` writes the parameter lists into the bundle's
Resources at build time and the C++ shell reads that JSON file.
"""
