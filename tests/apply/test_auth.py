"""Tests for etcd_twisted.apply.auth: permission checks on applied requests, auth requests."""

import base64

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import auth_pb2, rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalAuthenticateRequest, InternalRaftRequest
from etcd_twisted.apply.auth import ADMIN_KINDS, AUTH_KINDS, AuthApplier
from etcd_twisted.auth import errors, password
from etcd_twisted.auth.store import AuthStore
from tests.support.memory_backend import MemoryBackend

P = auth_pb2.Permission


def op_put(key: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key))


def op_range(key: bytes, end: bytes = b"") -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key, range_end=end))


class AuthApplierTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = AuthStore(MemoryBackend().batch_tx, cost=4)
        self.leases: dict[int, set[bytes]] = {}
        self.applier = AuthApplier(self.store, lambda i: self.leases.get(i, set()))
        hashed = base64.b64encode(password.hash_password("pw", cost=4)).decode()
        for name in ("root", "u"):
            self.apply(auth_user_add=rpc_pb2.AuthUserAddRequest(name=name, hashedPassword=hashed))
        self.apply(auth_role_add=rpc_pb2.AuthRoleAddRequest(name="root"))
        self.apply(auth_role_add=rpc_pb2.AuthRoleAddRequest(name="rw"))
        self.apply(
            auth_role_grant_permission=rpc_pb2.AuthRoleGrantPermissionRequest(
                name="rw", perm=P(key=b"k", range_end=b"l", permType=P.READWRITE)
            )
        )
        self.apply(auth_user_grant_role=rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
        self.apply(auth_user_grant_role=rpc_pb2.AuthUserGrantRoleRequest(user="u", role="rw"))
        self.apply(auth_enable=rpc_pb2.AuthEnableRequest(), user="root")

    def request(self, user: str = "", **kw: object) -> InternalRaftRequest:
        req = InternalRaftRequest(**kw)
        if user:
            req.header.username = user
            req.header.auth_revision = self.store.revision
        return req

    def apply(self, user: str = "", index: int = 1, **kw: object) -> object:
        req = self.request(user, **kw)
        self.applier.check(req)
        return self.applier.apply(req, index, now=0.0)

    def check(self, user: str = "", **kw: object) -> None:
        self.applier.check(self.request(user, **kw))

    def test_admin_requests(self) -> None:
        """Admin requests need the root role; without a user it is "user name is empty"."""
        self.assertTrue(ADMIN_KINDS < AUTH_KINDS)
        status = self.apply(auth_status=rpc_pb2.AuthStatusRequest(), user="root")
        self.assertEqual((status.enabled, status.authRevision), (True, self.store.revision))
        with self.assertRaises(errors.PermissionDeniedError):
            self.check(auth_user_list=rpc_pb2.AuthUserListRequest(), user="u")
        with self.assertRaises(errors.UserEmptyError):
            self.check(auth_role_add=rpc_pb2.AuthRoleAddRequest(name="x"))
        users = self.apply(auth_user_list=rpc_pb2.AuthUserListRequest(), user="root")
        self.assertEqual(list(users.users), ["root", "u"])

    def test_get_self_and_own_role(self) -> None:
        """A user may get itself and the roles it has, nothing else."""
        got = self.apply(auth_user_get=rpc_pb2.AuthUserGetRequest(name="u"), user="u")
        self.assertEqual(list(got.roles), ["rw"])
        role = self.apply(auth_role_get=rpc_pb2.AuthRoleGetRequest(role="rw"), user="u")
        self.assertEqual(role.perm[0].key, b"k")
        with self.assertRaises(errors.PermissionDeniedError):
            self.check(auth_user_get=rpc_pb2.AuthUserGetRequest(name="root"), user="u")
        with self.assertRaises(errors.PermissionDeniedError):
            self.check(auth_role_get=rpc_pb2.AuthRoleGetRequest(role="root"), user="u")

    def test_kv_checks(self) -> None:
        """Puts and deletes need write, with prev_kv read too; outside the range is denied."""
        self.check(put=rpc_pb2.PutRequest(key=b"k1", prev_kv=True), user="u")
        self.check(delete_range=rpc_pb2.DeleteRangeRequest(key=b"k", range_end=b"l"), user="u")
        with self.assertRaises(errors.PermissionDeniedError):
            self.check(put=rpc_pb2.PutRequest(key=b"x"), user="u")
        with self.assertRaises(errors.UserEmptyError):
            self.check(put=rpc_pb2.PutRequest(key=b"k1"))
        stale = self.request("u", put=rpc_pb2.PutRequest(key=b"k1"))
        self.apply(auth_role_add=rpc_pb2.AuthRoleAddRequest(name="other"), user="root")
        with self.assertRaises(errors.AuthOldRevisionError):
            self.applier.check(stale)

    def test_lease_keys(self) -> None:
        """Attaching to, or revoking, a lease needs write on every key already on it."""
        self.leases[7] = {b"k1", b"secret"}
        with self.assertRaises(errors.PermissionDeniedError):
            self.check(put=rpc_pb2.PutRequest(key=b"k2", lease=7), user="u")
        with self.assertRaises(errors.PermissionDeniedError):
            self.check(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=7), user="u")
        self.check(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=7), user="root")
        self.check(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=8), user="u")

    def test_txn(self) -> None:
        """A txn needs read on compares and each op's permission, nested txns included."""
        ok = rpc_pb2.TxnRequest(
            compare=[rpc_pb2.Compare(key=b"k1")], success=[op_put(b"k2")], failure=[op_range(b"k")]
        )
        self.check(txn=ok, user="u")
        for bad in (
            rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"x")]),
            rpc_pb2.TxnRequest(failure=[op_put(b"x")]),
            rpc_pb2.TxnRequest(success=[op_range(b"k", b"\x00")]),
            rpc_pb2.TxnRequest(
                success=[rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(success=[op_put(b"x")]))]
            ),
        ):
            with self.assertRaises(errors.PermissionDeniedError):
                self.check(txn=bad, user="u")

    def test_authenticate(self) -> None:
        """Authenticate issues prefix.index, a token the store then knows."""
        resp = self.apply(
            authenticate=InternalAuthenticateRequest(name="u", simple_token="abcd"), index=42
        )
        self.assertEqual(resp.token, "abcd.42")
        self.assertEqual(self.store.auth_info_from_token("abcd.42", now=1.0).username, "u")

    def test_disabled_checks_nothing(self) -> None:
        """With auth off, requests without a user pass every check."""
        self.apply(auth_disable=rpc_pb2.AuthDisableRequest(), user="root")
        self.check(put=rpc_pb2.PutRequest(key=b"x"))
        self.check(auth_user_list=rpc_pb2.AuthUserListRequest())
        self.check(txn=rpc_pb2.TxnRequest(success=[op_put(b"x")]))
