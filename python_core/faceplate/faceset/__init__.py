"""Faceset tools: sort keys and file moves, store/faceset jobs (remove, rename, from-faces,
extract, merge), audits and drawing."""
