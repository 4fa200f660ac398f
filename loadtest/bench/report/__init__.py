"""BENCHMARKS.md from a run's results: the main document, the room history section, and
which of them a run rewrites."""
