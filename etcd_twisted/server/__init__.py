"""The etcd server: requests in, through raft and the applier, responses out.

A write: ``KVFrontend.put`` (``kv_frontend.py``) checks it and the quota
(``quota.py``); the ``Proposer`` (``proposer.py``) gives it an id, registers its
Deferred, and hands the reactor turn's batch to ``RaftService`` (``raft_service.py``,
the only owner of the ``RawNode``). The Ready loop persists the entries on the
``WALWriter`` thread (one fdatasync per batch), sends them to peers (``peers.py``),
and hands committed entries to ``EtcdServer.apply_entries`` (``etcd_server.py``),
which runs each through ``apply.Applier`` into one LMDB batch and answers the
Deferred through ``Proposer.answer``.

A linearizable read: ``KVFrontend.range`` waits on ``Proposer.linearizable``: a
batched ReadIndex round (``read_index.py``) asks raft for the commit index, the
read waits until the applied index reaches it, then reads the local store.

Around them: leases (``leases.py``, expiry on the leader, calls forwarded to the
leader by ``forwarder.py``), maintenance and membership calls (``maintenance.py``,
``reconfig.py``, ``conf_changes.py``), snapshots taken (``snapshot.py``) and received
(``snapshot_install.py``), compaction (``compactor.py`` timers, ``compaction.py``
steps), leadership moves (``leadership.py``), timers as named services (``timers.py``,
``deadlines.py``, ``watch_sync.py``), the token side of auth (``auth_frontend.py``),
and the data dir opened at start (``bootstrap.py``).
"""
