"""Benchmarks: load generators, peers and the report, for ``scripts/bench``.

``stats`` and ``loadgen`` use only the standard library: they run inside the
bench image's client containers. ``report`` is pure too (JSON in, Markdown and
SVG out); only ``scripts/bench`` talks to Docker.
"""
