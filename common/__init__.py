"""The bottom floor every package may use: errors, argument types, units, the event log.

Standard library only: the node image runs these too.
"""
