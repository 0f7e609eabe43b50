"""The generated protobuf code is fresh, and the wire facts etcd clients rely on hold."""

import subprocess
import tempfile
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import kv_pb2, rpc_pb2, v3election_pb2, v3lock_pb2

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "etcd_twisted" / "_pb"


def _field(message: type, name: str) -> FieldDescriptor:
    return message.DESCRIPTOR.fields_by_name[name]


class GeneratedCodeTests(SynchronousTestCase):
    def test_generated_code_is_fresh(self) -> None:
        """bin/genproto into a temp dir reproduces etcd_twisted/_pb/ byte for byte."""
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([str(ROOT / "bin" / "genproto"), tmp], check=True, cwd=ROOT)
            fresh = {p.name: p.read_bytes() for p in Path(tmp).glob("*_pb2*")}
        committed = {p.name: p.read_bytes() for p in GENERATED.glob("*_pb2*")}
        stale = sorted(
            n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n)
        )
        self.assertEqual(stale, [], "etcd_twisted/_pb is stale: run bin/genproto")


class WireFactTests(SynchronousTestCase):
    def test_range_request_numbers(self) -> None:
        """RangeRequest: key 1, range_end 2, limit 3, revision 4, max_create_revision 13."""
        numbers = {f.name: f.number for f in rpc_pb2.RangeRequest.DESCRIPTOR.fields}
        self.assertEqual(
            (numbers["key"], numbers["range_end"], numbers["limit"], numbers["revision"]),
            (1, 2, 3, 4),
        )
        self.assertEqual(numbers["max_create_revision"], 13)

    def test_put_request_prev_kv(self) -> None:
        """PutRequest.prev_kv is the bool field 4."""
        field = _field(rpc_pb2.PutRequest, "prev_kv")
        self.assertEqual((field.number, field.type), (4, FieldDescriptor.TYPE_BOOL))

    def test_response_header(self) -> None:
        """ResponseHeader is cluster_id, member_id (uint64), revision (int64), raft_term (uint64)."""
        fields = [(f.name, f.number, f.type) for f in rpc_pb2.ResponseHeader.DESCRIPTOR.fields]
        self.assertEqual(
            fields,
            [
                ("cluster_id", 1, FieldDescriptor.TYPE_UINT64),
                ("member_id", 2, FieldDescriptor.TYPE_UINT64),
                ("revision", 3, FieldDescriptor.TYPE_INT64),
                ("raft_term", 4, FieldDescriptor.TYPE_UINT64),
            ],
        )

    def test_watch_filters_are_an_enum_list(self) -> None:
        """WatchCreateRequest.filters is a repeated FilterType enum, NOPUT=0, NODELETE=1."""
        field = _field(rpc_pb2.WatchCreateRequest, "filters")
        self.assertEqual(field.number, 5)
        self.assertTrue(field.is_repeated)
        self.assertEqual(field.enum_type.full_name, "etcdserverpb.WatchCreateRequest.FilterType")
        self.assertEqual(rpc_pb2.WatchCreateRequest.NOPUT, 0)
        self.assertEqual(rpc_pb2.WatchCreateRequest.NODELETE, 1)

    def test_watch_response_events_is_field_11(self) -> None:
        """WatchResponse.events is the repeated mvccpb.Event field 11."""
        field = _field(rpc_pb2.WatchResponse, "events")
        self.assertEqual((field.number, field.message_type.full_name), (11, "mvccpb.Event"))

    def test_compare_range_end_is_field_64(self) -> None:
        """Compare.range_end is field 64, outside the target_union oneof."""
        field = _field(rpc_pb2.Compare, "range_end")
        self.assertEqual(field.number, 64)
        self.assertIsNone(field.containing_oneof)

    def test_event_type(self) -> None:
        """mvccpb.Event.EventType is PUT=0, DELETE=1."""
        self.assertEqual((kv_pb2.Event.PUT, kv_pb2.Event.DELETE), (0, 1))

    def test_key_value_numbers(self) -> None:
        """KeyValue fields are key, create_revision, mod_revision, version, value, lease = 1..6."""
        names = [f.name for f in sorted(kv_pb2.KeyValue.DESCRIPTOR.fields, key=lambda f: f.number)]
        self.assertEqual(
            names, ["key", "create_revision", "mod_revision", "version", "value", "lease"]
        )

    def test_streaming_kinds(self) -> None:
        """Watch and LeaseKeepAlive stream both ways; Snapshot and Observe stream responses."""
        kinds = {}
        for service in (
            rpc_pb2.DESCRIPTOR.services_by_name["Watch"],
            rpc_pb2.DESCRIPTOR.services_by_name["Lease"],
            rpc_pb2.DESCRIPTOR.services_by_name["Maintenance"],
            v3election_pb2.DESCRIPTOR.services_by_name["Election"],
        ):
            for method in service.methods:
                kinds[method.full_name] = (method.client_streaming, method.server_streaming)
        self.assertEqual(kinds["etcdserverpb.Watch.Watch"], (True, True))
        self.assertEqual(kinds["etcdserverpb.Lease.LeaseKeepAlive"], (True, True))
        self.assertEqual(kinds["etcdserverpb.Maintenance.Snapshot"], (False, True))
        self.assertEqual(kinds["v3electionpb.Election.Observe"], (False, True))
        self.assertEqual(kinds["etcdserverpb.Lease.LeaseGrant"], (False, False))

    def test_lock_service_name(self) -> None:
        """The lock service is v3lockpb.Lock with Lock and Unlock."""
        service = v3lock_pb2.DESCRIPTOR.services_by_name["Lock"]
        self.assertEqual(service.full_name, "v3lockpb.Lock")
        self.assertEqual([m.name for m in service.methods], ["Lock", "Unlock"])
