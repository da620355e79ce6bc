"""Programs that run inside the node image beside a node (in a sidecar), not on the host.

Standard library only. The host-side lab engine (``lab``) starts them; it never imports them.
"""
