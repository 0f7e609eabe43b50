"""aetcd (asyncio, gRPC) against an endpoint: ``python aetcd_checks.py HOST:PORT``.

Runs in its own venv; prints ``ok <check>`` per check and exits 1 at the first failure."""

import asyncio
import sys

import aetcd


async def main(host: str, port: int) -> None:
    async with aetcd.Client(host=host, port=port, timeout=10) as client:
        await client.put(b"/kit/a", b"1")
        assert (await client.get(b"/kit/a")).value == b"1"
        print("ok put-get")

        await client.put(b"/kit/b", b"2")
        assert sorted(kv.value for kv in await client.get_prefix(b"/kit/")) == [b"1", b"2"]
        print("ok prefix")

        lease = await client.lease(600)
        await client.put(b"/kit/leased", b"x", lease=lease)
        assert (await client.get(b"/kit/leased")).value == b"x"
        await lease.revoke()
        assert await client.get(b"/kit/leased") is None
        print("ok lease")

        watch = await client.watch(b"/kit/watched")
        await client.put(b"/kit/watched", b"w")
        async for event in watch:
            assert event.kv.value == b"w"
            break
        await watch.cancel()
        print("ok watch")

        deleted = await client.delete_prefix(b"/kit/")
        assert deleted.deleted == 3, deleted
        print("ok delete")


host, port = sys.argv[1].rsplit(":", 1)
asyncio.run(main(host, int(port)))
