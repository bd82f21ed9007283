"""Benchmarks of bosun against the bare runtime and raw SQLite.

Run them with ``python -m bench`` (see ``bench/__main__.py``). Each group lives in its own module
and returns a ``Section`` of the report; ``bench.report`` writes ``docs/benchmarks.md``. Numbers
come from the machine the run happened on and are compared side by side within one run, because
absolute timings on a shared virtual machine drift.
"""
