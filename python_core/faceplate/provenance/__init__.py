"""Provenance: the invisible watermark on swapped faces (:mod:`.watermark`), the metadata
statement in every file written (:mod:`.metadata`), the signed C2PA manifest
(:mod:`.c2pa_sign`) and ``faceplate verify`` (:mod:`.verify`).

Submodules are imported on use (C2PA and the watermark detector are heavier than the metadata).
"""
