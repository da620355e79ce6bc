"""Peers the testbed's servers are measured against (the stdlib server; rsyslog and Redis images)."""
