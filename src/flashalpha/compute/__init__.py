"""The pricing fleet: wire protocol, dispatcher (daemon side), stateless workers, local fleet.

See docs/PROTOCOL.md ("Worker protocol") and docs/OPERATIONS.md.
"""
