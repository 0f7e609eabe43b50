"""etcd-twisted: an etcd v3 server on Twisted."""

__version__ = "0.1.0"

#: The etcd release whose API and behaviour this server follows.
ETCD_VERSION = "3.5.1"
#: The cluster version reported by ``/version``.
CLUSTER_VERSION = "3.5.0"
