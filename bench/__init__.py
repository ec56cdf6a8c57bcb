"""Benchmarks of the hot paths against baselines measured in the same run (`make bench`).

Run as `python -m bench [--quick] [--only NAME ...]`; see README.md ("Benchmarks").
"""
