"""Entries committed per second through a 3-node in-memory raft cluster.

Each node handles its Ready as a server would (append to MemoryStorage, save the hard
state, send, apply, advance); messages go straight into the target's inbox. An entry counts
once it is applied on all three nodes. Modes:

- ``sequential``: propose one entry, run until it is applied everywhere, repeat;
- ``pipelined``: ``--batch`` separate ``propose()`` calls between Ready rounds;
- ``batched``: one ``propose_batch()`` of ``--batch`` entries between Ready rounds.

Usage: ``.venv/bin/python bench/raft_inmemory.py [--entries N] [--batch B] [--size BYTES]``
"""

import argparse
import time
from random import Random

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import Config, MemoryStorage, RawNode, StateType


class Cluster:
    """Three RawNodes joined by inboxes."""

    def __init__(self, n: int = 3) -> None:
        self.nodes: dict[int, RawNode] = {}
        self.storages: dict[int, MemoryStorage] = {}
        self.applied: dict[int, int] = {}
        ids = list(range(1, n + 1))
        for i in ids:
            storage = MemoryStorage()
            snap = raft_pb2.Snapshot()
            snap.metadata.index = 1
            snap.metadata.term = 1
            snap.metadata.conf_state.voters.extend(ids)
            storage.apply_snapshot(snap)
            self.storages[i] = storage
            self.nodes[i] = RawNode(
                Config(id=i, storage=storage, random=Random(i), max_inflight_msgs=512)
            )
            self.applied[i] = 1
        self.inbox: dict[int, list[raft_pb2.Message]] = {i: [] for i in ids}
        self.nodes[1].campaign()
        self.pump()
        assert self.nodes[1].raft.state == StateType.LEADER

    def pump(self) -> None:
        """Handle Readies and deliver messages until the cluster is quiet."""
        nodes, inbox, storages, applied = self.nodes, self.inbox, self.storages, self.applied
        busy = True
        while busy:
            busy = False
            for i, raw in nodes.items():
                msgs = inbox[i]
                if msgs:
                    inbox[i] = []
                    for m in msgs:
                        raw.step(m)
                if raw.has_ready():
                    busy = True
                    rd = raw.ready()
                    storage = storages[i]
                    if rd.entries:
                        storage.append(rd.entries)
                    if rd.hard_state is not None:
                        storage.set_hard_state(rd.hard_state)
                    for m in rd.messages:
                        inbox[m.to].append(m)
                    if rd.committed_entries:
                        applied[i] = rd.committed_entries[-1].index
                    raw.advance(rd)
                if inbox[i]:
                    busy = True

    def min_applied(self) -> int:
        """The highest index applied on every node."""
        return min(self.applied.values())


def run(mode: str, entries: int, batch: int, size: int) -> float:
    """Entries per second for one mode."""
    cluster = Cluster()
    leader = cluster.nodes[1]
    payload = b"x" * size
    start_index = cluster.min_applied()
    t0 = time.perf_counter()
    done = 0
    while done < entries:
        if mode == "sequential":
            leader.propose(payload)
            done += 1
        elif mode == "pipelined":
            n = min(batch, entries - done)
            for _ in range(n):
                leader.propose(payload)
            done += n
        else:
            n = min(batch, entries - done)
            leader.propose_batch([payload] * n)
            done += n
        cluster.pump()
    elapsed = time.perf_counter() - t0
    assert cluster.min_applied() - start_index == entries
    return entries / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--size", type=int, default=128, help="payload bytes per entry")
    args = parser.parse_args()
    for mode in ("sequential", "pipelined", "batched"):
        n = args.entries // 4 if mode == "sequential" else args.entries
        rate = run(mode, n, args.batch, args.size)
        extra = "" if mode == "sequential" else f" (batch {args.batch})"
        print(f"{mode:>10}: {rate:10.0f} entries/s committed on all 3 nodes{extra}")


if __name__ == "__main__":
    main()
