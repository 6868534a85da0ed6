"""Benchmarks: each runs a baseline and ours in the same run and reports the ratio (docs/benchmarks.md)."""
