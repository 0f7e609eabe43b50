"""python-etcd3 (``etcd3`` 0.12.0, gRPC) against an endpoint: ``python etcd3_checks.py HOST:PORT``.

Runs in its own venv (etcd3 0.12.0 needs protobuf 3); prints ``ok <check>`` per check and
exits 1 at the first failure."""

import sys
import threading

import etcd3

host, port = sys.argv[1].rsplit(":", 1)
client = etcd3.client(host=host, port=int(port), timeout=10)

client.put("/kit/a", "1")
value, meta = client.get("/kit/a")
assert value == b"1", value
print("ok put-get")

client.put("/kit/b", "2")
assert sorted(v for v, _ in client.get_prefix("/kit/")) == [b"1", b"2"]
print("ok prefix")

lease = client.lease(600)
client.put("/kit/leased", "x", lease=lease)
assert client.get("/kit/leased")[0] == b"x"
lease.revoke()
assert client.get("/kit/leased")[0] is None
print("ok lease")

events = []
seen = threading.Event()


def on_event(response):
    events.extend(response.events)
    seen.set()


watch_id = client.add_watch_callback("/kit/watched", on_event)
client.put("/kit/watched", "w")
assert seen.wait(10), "no watch event"
assert events[0].value == b"w"
client.cancel_watch(watch_id)
print("ok watch")

ok, _ = client.transaction(
    compare=[client.transactions.value("/kit/a") == "1"],
    success=[client.transactions.put("/kit/a", "2")],
    failure=[],
)
assert ok and client.get("/kit/a")[0] == b"2"
print("ok txn")

with client.lock("kit-lock", ttl=10) as lock:
    assert lock.is_acquired()
print("ok lock")

assert client.delete_prefix("/kit/").deleted == 3
print("ok delete")
