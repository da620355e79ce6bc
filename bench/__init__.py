"""Benchmarks: the servers beside their peers across a Docker network (``python -m bench``, ``scripts/bench``).

Two kinds of module, kept apart because one kind is shipped into containers:

* In the bench image's client containers, on the standard library only (the
  image is the node image plus this directory; nothing is pip-installed
  there): ``loadgen`` (the load generators), ``stats`` (histograms and
  percentiles) and ``peers.stdlib_upper`` (the stdlib server the line servers
  are measured against). They, and this file, must import neither Docker nor
  matplotlib nor yaml.
* On the host: ``options`` (the command line), ``cli`` (main), ``run`` (one
  run: images, the network, the sections), ``harness`` (the bench network's
  containers), ``images``, ``cpu`` (cgroup CPU accounting), ``progress``,
  ``sections`` (upper, udp, chat, lab), ``report`` (medians, targets, Markdown:
  pure) and ``plot`` (the SVG, the one module that imports matplotlib).
"""
