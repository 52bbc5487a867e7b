"""Pure NumPy foundations: types, geometry, colour space, registry, configs, errors.

Nothing in ``core`` performs I/O or imports a model.
"""
