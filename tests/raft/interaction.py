"""A small interpreter for raft transcripts (``testdata/*.txt``).

A transcript is a series of blocks separated by blank lines::

    # comments
    command arg key=value
    ----
    expected output (or "ok")

Commands drive a ``Network`` (see ``harness``) step by step and print what happened:
``Ready`` dumps, delivered messages, logs and states. Set ``RAFT_REWRITE_TRANSCRIPTS=1`` to
write the actual output back into the files; then read every change before committing it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from random import Random

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import ProposalDroppedError, RaftError, Ready
from etcd_twisted.raft.raft import StateType
from tests.raft.harness import AppStorage, Network, new_storage

REWRITE_ENV = "RAFT_REWRITE_TRANSCRIPTS"

_CC_TYPES = {
    "add": raft_pb2.ConfChangeAddNode,
    "remove": raft_pb2.ConfChangeRemoveNode,
    "update": raft_pb2.ConfChangeUpdateNode,
    "add-learner": raft_pb2.ConfChangeAddLearnerNode,
}
_CC_NAMES = {v: k for k, v in _CC_TYPES.items()}
_STATE_NAMES = {
    StateType.FOLLOWER: "StateFollower",
    StateType.CANDIDATE: "StateCandidate",
    StateType.LEADER: "StateLeader",
    StateType.PRE_CANDIDATE: "StatePreCandidate",
}


# -- formatting ------------------------------------------------------------------------------


def describe_entry(e: raft_pb2.Entry) -> str:
    """``term/index EntryType payload``."""
    if e.type == raft_pb2.EntryConfChange:
        cc = raft_pb2.ConfChange()
        cc.ParseFromString(e.data)
        return f"{e.term}/{e.index} EntryConfChange {_CC_NAMES[cc.type]} {cc.node_id}"
    return f'{e.term}/{e.index} EntryNormal "{e.data.decode()}"'


def describe_snapshot(s: raft_pb2.Snapshot) -> str:
    """Index, term and configuration of a snapshot."""
    cs = s.metadata.conf_state
    out = f"Index:{s.metadata.index} Term:{s.metadata.term} Voters:{list(cs.voters)}"
    if cs.learners:
        out += f" Learners:{list(cs.learners)}"
    return out


def describe_message(m: raft_pb2.Message) -> str:
    """One line per message, in the manner of etcd's transcripts."""
    s = f"{m.from_}->{m.to} {raft_pb2.MessageType.Name(m.type)} Term:{m.term} Log:{m.log_term}/{m.index}"
    if m.reject:
        s += f" Rejected (Hint: {m.reject_hint})"
    if m.commit:
        s += f" Commit:{m.commit}"
    if m.entries:
        s += " Entries:[" + ", ".join(describe_entry(e) for e in m.entries) + "]"
    if m.HasField("snapshot"):
        s += " Snapshot: " + describe_snapshot(m.snapshot)
    if m.context:
        s += f' Context:"{m.context.decode()}"'
    return s


def describe_ready(rd: Ready) -> list[str]:
    """The lines of a ``Ready`` dump."""
    lines = [f"Ready MustSync={str(rd.must_sync).lower()}:"]
    if rd.soft_state is not None:
        lines.append(f"Lead:{rd.soft_state.lead} State:{_STATE_NAMES[rd.soft_state.raft_state]}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        lines.append(f"HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}")
    if rd.entries:
        lines.append("Entries:")
        lines.extend(describe_entry(e) for e in rd.entries)
    if rd.snapshot is not None:
        lines.append("Snapshot " + describe_snapshot(rd.snapshot))
    if rd.committed_entries:
        lines.append("CommittedEntries:")
        lines.extend(describe_entry(e) for e in rd.committed_entries)
    if rd.messages:
        lines.append("Messages:")
        lines.extend(describe_message(m) for m in rd.messages)
    if rd.read_states:
        lines.append("ReadStates:")
        lines.extend(f'Index:{rs.index} Ctx:"{rs.request_ctx.decode()}"' for rs in rd.read_states)
    return lines


# -- the interpreter ---------------------------------------------------------------------------


def _ids(args: list[str]) -> list[int]:
    return [int(a) for a in args if "=" not in a]


def _kwargs(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args if "=" in a)


def _id_list(value: str) -> list[int]:
    return [int(x) for x in value.strip("()").split(",") if x]


class _NoJitter(Random):
    """Transcripts want exact timing: every election timeout is exactly election_tick."""

    def randrange(self, *args: object, **kwargs: object) -> int:
        return 0


class Interaction:
    """The state of one transcript run and one method per command."""

    def __init__(self) -> None:
        self.net = Network([])

    def run(self, command: str) -> str:
        """Run one command line and return its output."""
        name, *args = command.split()
        handler: Callable[[list[str]], list[str]] = getattr(self, "cmd_" + name.replace("-", "_"))
        out = handler(args)
        return "\n".join(out) if out else "ok"

    def _ready_lines(self, node_id: int) -> list[str]:
        rd = self.net.process_ready(self.net.nodes[node_id])
        return describe_ready(rd) if rd is not None else []

    def _all_ids(self, args: list[str]) -> list[int]:
        return _ids(args) or sorted(self.net.nodes)

    # commands

    def cmd_add_nodes(self, args: list[str]) -> list[str]:
        """``add-nodes N voters=(1,2,3) learners=(4) index=I prevote=true checkquorum=true
        max-inflight=N max-size=N election-tick=N heartbeat-tick=N``: start N more nodes (ids continue from the last)."""
        count = int(args[0])
        kw = _kwargs(args[1:])
        voters = _id_list(kw.get("voters", "()"))
        learners = _id_list(kw.get("learners", "()"))
        index = int(kw.get("index", "0"))
        config = {
            "pre_vote": kw.get("prevote") == "true",
            "check_quorum": kw.get("checkquorum") == "true",
        }
        if "max-inflight" in kw:
            config["max_inflight_msgs"] = int(kw["max-inflight"])
        if "election-tick" in kw:
            config["election_tick"] = int(kw["election-tick"])
        if "heartbeat-tick" in kw:
            config["heartbeat_tick"] = int(kw["heartbeat-tick"])
        if "max-size" in kw:
            config["max_size_per_msg"] = int(kw["max-size"])
        first = max(self.net.nodes, default=0) + 1
        for node_id in range(first, first + count):
            storage = new_storage(voters, learners, index=index) if index else AppStorage()
            self.net.add_node(node_id, storage, random=_NoJitter(), **config)
        return []

    def cmd_campaign(self, args: list[str]) -> list[str]:
        """``campaign ID``."""
        self.net.nodes[int(args[0])].raw.campaign()  # type: ignore[union-attr]
        return []

    def cmd_propose(self, args: list[str]) -> list[str]:
        """``propose ID data``."""
        try:
            self.net.nodes[int(args[0])].raw.propose(args[1].encode())  # type: ignore[union-attr]
        except ProposalDroppedError as e:
            return [f"raft proposal dropped: {e}"]
        return []

    def cmd_propose_conf_change(self, args: list[str]) -> list[str]:
        """``propose-conf-change ID add|remove|update|add-learner NODE``."""
        cc = raft_pb2.ConfChange(type=_CC_TYPES[args[1]], node_id=int(args[2]))
        try:
            self.net.nodes[int(args[0])].raw.propose_conf_change(cc)  # type: ignore[union-attr]
        except ProposalDroppedError as e:
            return [f"raft proposal dropped: {e}"]
        return []

    def cmd_read_index(self, args: list[str]) -> list[str]:
        """``read-index ID ctx``."""
        try:
            self.net.nodes[int(args[0])].raw.read_index(args[1].encode())  # type: ignore[union-attr]
        except RaftError as e:
            return [f"read index dropped: {type(e).__name__}"]
        return []

    def cmd_transfer_leadership(self, args: list[str]) -> list[str]:
        """``transfer-leadership from=ID to=ID``."""
        kw = _kwargs(args)
        self.net.nodes[int(kw["from"])].raw.transfer_leader(int(kw["to"]))  # type: ignore[union-attr]
        return []

    def cmd_process_ready(self, args: list[str]) -> list[str]:
        """``process-ready IDs...``: handle one Ready of each node."""
        ids = _ids(args)
        if len(ids) == 1:
            return self._ready_lines(ids[0])
        out = []
        for node_id in ids:
            out.append(f"> {node_id} handling Ready")
            out.extend("  " + line for line in self._ready_lines(node_id))
        return out

    def cmd_deliver_msgs(self, args: list[str]) -> list[str]:
        """``deliver-msgs [drop=ID] IDs...``: deliver (or drop) the queued messages to IDs."""
        kw = _kwargs(args)
        if "drop" in kw:
            target = int(kw["drop"])
            dropped = self.net.drop_where(lambda m: m.to == target)
            return ["dropped: " + describe_message(m) for m in dropped]
        return self._deliver_to(set(_ids(args)), "")

    def _deliver_to(self, targets: set[int], indent: str) -> list[str]:
        out = []
        i = 0
        while i < len(self.net.queue):
            if self.net.queue[i].to in targets:
                out.append(indent + describe_message(self.net.deliver(i, process=False)))
            else:
                i += 1
        return out

    def cmd_stabilize(self, args: list[str]) -> list[str]:
        """``stabilize [IDs...]``: alternate handling Readies and delivering until quiet."""
        ids = self._all_ids(args)
        out: list[str] = []
        while True:
            done = True
            for node_id in ids:
                node = self.net.nodes[node_id]
                if node.raw is not None and node.raw.has_ready():
                    done = False
                    out.append(f"> {node_id} handling Ready")
                    out.extend("  " + line for line in self._ready_lines(node_id))
            for node_id in ids:
                if any(m.to == node_id for m in self.net.queue):
                    done = False
                    out.append(f"> {node_id} receiving messages")
                    out.extend(self._deliver_to({node_id}, "  "))
            if done:
                return out

    def cmd_tick_heartbeat(self, args: list[str]) -> list[str]:
        """``tick-heartbeat ID``: heartbeat_tick ticks."""
        r = self.net.raft(int(args[0]))
        for _ in range(r.heartbeat_timeout):
            r.tick()
        return []

    def cmd_tick_election(self, args: list[str]) -> list[str]:
        """``tick-election ID``: election_tick ticks."""
        r = self.net.raft(int(args[0]))
        for _ in range(r.election_timeout):
            r.tick()
        return []

    def cmd_partition(self, args: list[str]) -> list[str]:
        """``partition 1 2 / 3``: groups separated by ``/``."""
        groups: list[list[int]] = [[]]
        for a in args:
            if a == "/":
                groups.append([])
            else:
                groups[-1].append(int(a))
        self.net.partition(*groups)
        return []

    def cmd_heal(self, args: list[str]) -> list[str]:
        """``heal``: undo partitions."""
        self.net.heal()
        return []

    def cmd_crash(self, args: list[str]) -> list[str]:
        """``crash ID``: lose everything not persisted."""
        self.net.crash(int(args[0]))
        return []

    def cmd_restart(self, args: list[str]) -> list[str]:
        """``restart ID``: start again from storage."""
        node_id = int(args[0])
        self.net.restart(node_id)
        return []

    def cmd_compact(self, args: list[str]) -> list[str]:
        """``compact ID INDEX``: snapshot the state machine at INDEX and drop the log before it."""
        node = self.net.nodes[int(args[0])]
        index = int(args[1])
        node.storage.create_snapshot(index, node.conf_state, b"")
        node.storage.compact(index)
        return self.cmd_raft_log(args[:1])

    def cmd_report_unreachable(self, args: list[str]) -> list[str]:
        """``report-unreachable ID TARGET``."""
        self.net.nodes[int(args[0])].raw.report_unreachable(int(args[1]))  # type: ignore[union-attr]
        return []

    def cmd_report_snapshot(self, args: list[str]) -> list[str]:
        """``report-snapshot ID TARGET ok|fail``."""
        raw = self.net.nodes[int(args[0])].raw
        raw.report_snapshot(int(args[1]), args[2] == "ok")  # type: ignore[union-attr]
        return []

    def cmd_raft_log(self, args: list[str]) -> list[str]:
        """``raft-log ID``: the readable log (stable and unstable)."""
        log = self.net.raft(int(args[0])).raft_log
        ents = log.all_entries()
        if not ents:
            return [f"log is empty: first index={log.first_index()}, last index={log.last_index()}"]
        return [describe_entry(e) for e in ents]

    def cmd_raft_state(self, args: list[str]) -> list[str]:
        """``raft-state``: role, term and leader of every node."""
        out = []
        for node_id in sorted(self.net.nodes):
            node = self.net.nodes[node_id]
            if node.raw is None:
                out.append(f"{node_id}: crashed")
                continue
            r = node.raft
            kind = "Learner" if r.is_learner else "Voter"
            if r.id not in r.trk.progress:
                kind = "Non-Voter"
            out.append(f"{node_id}: {_STATE_NAMES[r.state]} ({kind}) Term:{r.term} Lead:{r.lead}")
        return out

    def cmd_status(self, args: list[str]) -> list[str]:
        """``status ID``: the leader's view of each follower's progress."""
        st = self.net.nodes[int(args[0])].raw.status()  # type: ignore[union-attr]
        return [f"{i}: {pr!r}" for i, pr in sorted(st.progress.items())]


def run_transcript(path: Path) -> tuple[str, str]:
    """Run a transcript file; returns (expected text, actual text)."""
    text = path.read_text()
    interaction = Interaction()
    out: list[str] = []
    blocks = text.split("\n\n")
    for block in blocks:
        lines = block.strip("\n").split("\n")
        if lines == [""]:
            continue
        comments = [ln for ln in lines if ln.startswith("#")]
        rest = [ln for ln in lines if not ln.startswith("#")]
        if not rest:
            out.append("\n".join(comments))
            continue
        command = rest[0]
        if len(rest) < 2 or rest[1] != "----":
            raise ValueError(f"{path.name}: command {command!r} lacks a '----' line")
        actual = interaction.run(command)
        out.append("\n".join([*comments, command, "----", actual]))
    result = "\n\n".join(out) + "\n"
    if os.environ.get(REWRITE_ENV) and result != text:
        path.write_text(result)
    return text, result
