"""Conversion: put A's face onto B's footage (colour transfer, masks, blending, paste-back, writers).

``convert`` never imports ``train``: it loads models through ``faceplate.io.model_files``.
"""
