"""etcd v3 snapshot files (bbolt databases with a trailing sha256): status and restore.

* ``status``: ``etcdutl snapshot status``'s numbers (hash, revision, keys, size)
  and output formats, and the integrity hash check;
* ``restore``: a new data dir for this server from a snapshot of either server,
  as ``etcdutl snapshot restore`` makes one for etcd;
* ``cli``: the ``etcd-twisted-snapshot`` command.
"""
