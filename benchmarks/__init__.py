"""Overhead benchmarks: our layers against the bare app and the peers users would compose.

Run ``python -m benchmarks.run --quick`` for a smoke run, ``python -m benchmarks.run`` for the
full one; both rewrite ``docs/benchmarks.md`` and the plots in ``docs/img/``.
"""
