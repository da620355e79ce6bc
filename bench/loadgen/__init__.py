"""``python3 -m bench.loadgen {upper,udp,chat,redis-benchmark} ...``: load generators, one JSON object on stdout.

Standard library only; they run in client containers on the bench network. The
compiled ones (``bench/native``, C) are separate programs on the bench image's
PATH; ``bench.generators`` names every generator and judges its results.

* ``upper``: closed-loop line requests: ``--conns`` connections, one request in
  flight on each (no pipelining), every reply checked, latency per request
  measured with ``perf_counter_ns`` into a ``bench.stats.Histogram``. ``--procs``
  splits the connections over forked workers that measure the same window.
* ``udp``: datagrams of ``--size`` bytes paced at ``--rate`` per second for
  ``--duration`` seconds, counted exactly (the bench sends with the compiled
  ``bench-udp-sender`` by default: this one costs a core near 75,000/s).
* ``redis-benchmark``: Debian's redis-benchmark against the Redis peer, timed
  and charged its CPU like the others (``redis_bench``).
* ``chat``: ``--clients`` members in the chat room *and* ``--clients`` - 1
  subscribers plus the publishers on Redis, then alternating measurement phases
  on each (the same process, the same senders, the same fan-out): ``--senders``
  senders each keep one message in flight, the next leaves once every recipient
  has the previous one; deliveries and their latency are counted at the
  recipients.

One module each (``upper``, ``udp``, ``chat``, ``redis_bench``), ``common`` for what they
share and ``cli`` for the command line. The bench image ships this directory as
it is (``bench/Dockerfile`` copies ``bench/``), so a module here may import the
standard library and ``bench.stats`` only.

Why epoll and raw sockets rather than asyncio or threads: per request the loop
costs one ``recv``, one ``send`` and a few dictionary look-ups, several times less
CPU than a coroutine or a thread switch. That is not always enough: against
Redis PING one process is 96 % busy at 100 connections. So each result reports
its own CPU time (the whole and its busiest process's), and a row where the
generator was saturated says so (``bench.generators.bound_reason``).
"""
