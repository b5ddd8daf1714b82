"""Benchmarks: each module prints its figures and the machine it ran on (`bench.machine`).
Run one with `python -m bench.<name>`; `make bench` runs them all."""
