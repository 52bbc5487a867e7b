"""File formats: media readers, the alignments store, faceset PNGs, sample media."""
