"""Identity embeddings (dlib 128-d) and the reference-image face filter."""
