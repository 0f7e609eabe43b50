"""etcd3gw (the JSON-gateway client) against an endpoint: ``python etcd3gw_checks.py HOST:PORT``.

Runs in its own venv; prints ``ok <check>`` per check and exits 1 at the first failure."""

import sys

import etcd3gw

host, port = sys.argv[1].rsplit(":", 1)
client = etcd3gw.client(host=host, port=int(port), timeout=10)

assert client.put("/kit/a", "1")
assert client.get("/kit/a") == [b"1"], client.get("/kit/a")
print("ok put-get")

client.put("/kit/b", "2")
assert sorted(v for v, _ in client.get_prefix("/kit/")) == [b"1", b"2"]
print("ok prefix")

lease = client.lease(600)
client.put("/kit/leased", "x", lease=lease)
assert client.get("/kit/leased") == [b"x"]
assert lease.refresh() > 0
lease.revoke()
assert client.get("/kit/leased") == []
print("ok lease")

events, cancel = client.watch("/kit/watched")
client.put("/kit/watched", "w")
event = next(events)
assert event["kv"]["value"] == b"w", event
cancel()
print("ok watch")

assert client.create("/kit/new", "n")
assert not client.create("/kit/new", "again")
print("ok txn")

assert client.delete_prefix("/kit/")
assert client.get_prefix("/kit/") == []
print("ok delete")
