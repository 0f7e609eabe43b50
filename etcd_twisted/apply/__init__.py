"""The applier: committed raft requests run against the member's stores.

The path of a write through this package: ``Applier.apply(req, index, now)`` takes a
committed ``InternalRaftRequest``, finds its kind (the oneof name), and passes it
down the layers of ``layers.py``, as etcd's ``uberApplier``: ``AuthLayer`` (may the
request's user do this, at the auth revision it was authorised at?) → ``QuotaLayer``
(with NOSPACE raised, refuse what adds data) → ``CorruptLayer`` (with CORRUPT raised,
refuse data requests) → ``BackendApplier``, whose ``handlers`` table holds the one
handler per kind: KV (``kv.py``, one MVCC write transaction per request), leases,
alarms (``alarms.py``), auth (``auth.py``), cluster version and member attributes.
Every store lives in ``MemberState`` (``state.py``) over one backend batch
transaction. ``checks.py`` validates requests before they are proposed;
``quota.py`` says what a request costs. Pure logic: nothing here imports Twisted.
"""
