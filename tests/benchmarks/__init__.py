"""Benchmarks: Tact measured side by side with what the machine can do.

`python -m tests.benchmarks` (or `make bench`) runs them and writes
`tests/benchmarks/results/`. Every figure is a ratio against a baseline
measured in the same run, because the machines they run on are shared.
Nothing here asserts a timing.
"""
