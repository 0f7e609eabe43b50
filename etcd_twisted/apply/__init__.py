"""The applier: committed requests run against mvcc, lease, auth and membership."""
