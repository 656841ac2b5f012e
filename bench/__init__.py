"""Benchmarks that print timings and ratios (never part of the test suite's pass/fail)."""
