"""Benchmarks (`make bench`); recorded results in bench/RESULTS.md."""
