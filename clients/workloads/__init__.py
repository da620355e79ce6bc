"""Workloads: clients that keep talking to a server while a fault schedule runs (``lab chaos run``).

One module per server: ``chat``, ``creosote``, ``echo``, ``threaded``, each
``python -m clients.workloads.NAME --host HOST --tag TAG``. Each prints one JSON
event per line (``clients.workloads.common``); the lab's checkers
(``lab.chaos.checkers``) read them from the run's history and say whether the
clients saw something a correct server never shows.
"""
