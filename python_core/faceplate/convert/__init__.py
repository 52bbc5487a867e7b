"""Conversion: put A's face onto B's footage (colour, masks, blending, paste-back, writers).

``convert`` never imports ``train``: it loads models through ``faceplate.io.model_files``.
"""
