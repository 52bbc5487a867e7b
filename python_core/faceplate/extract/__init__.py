"""Extraction: detect → align (68 points) → mask → identity, and the pipeline that runs them."""
