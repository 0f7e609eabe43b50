"""Helpers shared by the integration tests: processes, ports, real etcd clients."""
