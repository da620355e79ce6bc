"""The bench's sections, one module each: ``upper``, ``udp``, ``chat`` (measured on a ``Bench``) and ``lab``.

Each measuring section starts its servers and peers on the bench network,
drives ``python3 -m bench.loadgen`` in the load generator container, and
returns its raw measurements with ``bench.report``'s summary of them.
"""
