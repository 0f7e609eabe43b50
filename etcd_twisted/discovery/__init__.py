"""How a member that is not initialized yet finds its initial cluster, instead of
``--initial-cluster``: DNS SRV records (``--discovery-srv``) or a v2 discovery
service (``--discovery``). Both run in ``makeService``, before the reactor, as etcd
does them before it starts."""
