"""Benchmarks: ``python -m cfc_control.bench <name> [options]``, one module per benchmark
(``cfc_control.bench.<name>`` with a ``main(argv)``)."""
