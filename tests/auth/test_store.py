"""Tests for etcd_twisted.auth.store: users, roles, root rules, revisions, checks."""

import base64

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import auth_pb2, rpc_pb2
from etcd_twisted.auth import errors, password
from etcd_twisted.auth.jwt_tokens import JWTTokens
from etcd_twisted.auth.store import AuthInfo, AuthStore
from tests.support.memory_backend import MemoryBackend

P = auth_pb2.Permission


def hashed(pw: str) -> str:
    return base64.b64encode(password.hash_password(pw, cost=4)).decode()


class StoreCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.backend = MemoryBackend()
        self.store = AuthStore(self.backend.batch_tx, cost=4)

    def add_user(self, name: str, pw: str = "pw") -> None:
        self.store.user_add(rpc_pb2.AuthUserAddRequest(name=name, hashedPassword=hashed(pw)))

    def add_root(self) -> None:
        self.add_user("root")
        self.store.role_add(rpc_pb2.AuthRoleAddRequest(name="root"))
        self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))

    def info(self, name: str) -> AuthInfo:
        return AuthInfo(name, self.store.revision)


class UserRoleTests(StoreCase):
    def test_new_store_revision(self) -> None:
        """A new store is at auth revision 1, disabled; both survive a reload."""
        self.assertEqual((self.store.revision, self.store.enabled), (1, False))
        self.add_user("a")
        again = AuthStore(self.backend.batch_tx)
        self.assertEqual((again.revision, again.enabled), (2, False))

    def test_users(self) -> None:
        """Add, list (sorted), get, delete; duplicates and unknowns are refused."""
        self.add_user("bob")
        self.add_user("alice")
        self.assertEqual(self.store.user_list(), ["alice", "bob"])
        with self.assertRaises(errors.UserAlreadyExistError):
            self.add_user("bob")
        with self.assertRaises(errors.UserEmptyError):
            self.add_user("")
        self.assertEqual(self.store.user_get(rpc_pb2.AuthUserGetRequest(name="bob")), [])
        self.store.user_delete(rpc_pb2.AuthUserDeleteRequest(name="bob"))
        with self.assertRaises(errors.UserNotFoundError):
            self.store.user_get(rpc_pb2.AuthUserGetRequest(name="bob"))
        with self.assertRaises(errors.UserNotFoundError):
            self.store.user_delete(rpc_pb2.AuthUserDeleteRequest(name="bob"))

    def test_roles_granted_sorted(self) -> None:
        """Roles are granted in sorted order, once; revoking an ungranted one is refused;
        granting an unknown role is refused except root."""
        self.add_user("u")
        for name in ("zeta", "alpha"):
            self.store.role_add(rpc_pb2.AuthRoleAddRequest(name=name))
        for role in ("zeta", "alpha", "root"):
            self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="u", role=role))
        rev = self.store.revision
        self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="u", role="alpha"))
        self.assertEqual(self.store.revision, rev)
        self.assertEqual(
            self.store.user_get(rpc_pb2.AuthUserGetRequest(name="u")), ["alpha", "root", "zeta"]
        )
        with self.assertRaises(errors.RoleNotFoundError):
            self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="u", role="nope"))
        with self.assertRaises(errors.UserNotFoundError):
            self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="x", role="alpha"))
        self.store.user_revoke_role(rpc_pb2.AuthUserRevokeRoleRequest(name="u", role="zeta"))
        with self.assertRaises(errors.RoleNotGrantedError):
            self.store.user_revoke_role(rpc_pb2.AuthUserRevokeRoleRequest(name="u", role="zeta"))

    def test_role_delete_revokes(self) -> None:
        """Deleting a role takes it from its users."""
        self.add_user("u")
        self.store.role_add(rpc_pb2.AuthRoleAddRequest(name="r"))
        self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="u", role="r"))
        self.store.role_delete(rpc_pb2.AuthRoleDeleteRequest(role="r"))
        self.assertEqual(self.store.user_get(rpc_pb2.AuthUserGetRequest(name="u")), [])
        self.assertEqual(self.store.role_list(), [])
        with self.assertRaises(errors.RoleNotFoundError):
            self.store.role_delete(rpc_pb2.AuthRoleDeleteRequest(role="r"))
        with self.assertRaises(errors.RoleEmptyError):
            self.store.role_add(rpc_pb2.AuthRoleAddRequest(name=""))

    def test_permissions(self) -> None:
        """Permissions are kept sorted by key; a grant on the same range changes its type;
        revoking needs the exact range."""
        self.store.role_add(rpc_pb2.AuthRoleAddRequest(name="r"))
        grant = rpc_pb2.AuthRoleGrantPermissionRequest
        self.store.role_grant_permission(grant(name="r", perm=P(key=b"z", permType=P.READ)))
        self.store.role_grant_permission(
            grant(name="r", perm=P(key=b"a", range_end=b"b", permType=P.READ))
        )
        self.store.role_grant_permission(
            grant(name="r", perm=P(key=b"a", range_end=b"b", permType=P.READWRITE))
        )
        got = self.store.role_get(rpc_pb2.AuthRoleGetRequest(role="r"))
        self.assertEqual(
            [(p.key, p.range_end, p.permType) for p in got],
            [(b"a", b"b", P.READWRITE), (b"z", b"", P.READ)],
        )
        with self.assertRaises(errors.PermissionNotGivenError):
            self.store.role_grant_permission(grant(name="r"))
        with self.assertRaises(errors.RoleNotFoundError):
            self.store.role_grant_permission(grant(name="x", perm=P(key=b"a")))
        revoke = rpc_pb2.AuthRoleRevokePermissionRequest
        with self.assertRaises(errors.PermissionNotGrantedError):
            self.store.role_revoke_permission(revoke(role="r", key=b"a"))
        self.store.role_revoke_permission(revoke(role="r", key=b"a", range_end=b"b"))
        self.assertEqual(len(self.store.role_get(rpc_pb2.AuthRoleGetRequest(role="r"))), 1)

    def test_change_password(self) -> None:
        """A new password replaces the old one and ends the user's tokens."""
        self.add_root()
        self.store.auth_enable()
        token = self.store.authenticate("root", "abc", 5, now=0)
        self.store.user_change_password(
            rpc_pb2.AuthUserChangePasswordRequest(name="root", hashedPassword=hashed("new"))
        )
        self.assertIsNone(self.store.auth_info_from_token(token, now=1))
        self.store.check_password("root", "new")
        with self.assertRaises(errors.AuthFailedError):
            self.store.check_password("root", "pw")
        with self.assertRaises(errors.UserNotFoundError):
            self.store.user_change_password(rpc_pb2.AuthUserChangePasswordRequest(name="x"))

    def test_plain_password(self) -> None:
        """A request carrying only a plain password (no hash) is hashed by the store."""
        self.store.user_add(rpc_pb2.AuthUserAddRequest(name="root", password="plain"))
        self.store.role_add(rpc_pb2.AuthRoleAddRequest(name="root"))
        self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
        self.store.auth_enable()
        self.assertEqual(self.store.check_password("root", "plain"), self.store.revision)


class EnableTests(StoreCase):
    def test_enable_needs_root(self) -> None:
        """Enabling needs user root, holding role root."""
        with self.assertRaises(errors.RootUserNotExistError):
            self.store.auth_enable()
        self.add_user("root")
        with self.assertRaises(errors.RootRoleNotExistError):
            self.store.auth_enable()
        self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
        rev = self.store.revision
        self.store.auth_enable()
        self.store.auth_enable()
        self.assertEqual((self.store.enabled, self.store.revision), (True, rev))
        self.assertTrue(AuthStore(self.backend.batch_tx).enabled)

    def test_root_protected_while_enabled(self) -> None:
        """While enabled, root cannot be deleted, lose role root, and role root stays."""
        self.add_root()
        self.store.auth_enable()
        with self.assertRaises(errors.InvalidAuthMgmtError):
            self.store.user_delete(rpc_pb2.AuthUserDeleteRequest(name="root"))
        with self.assertRaises(errors.InvalidAuthMgmtError):
            self.store.user_revoke_role(rpc_pb2.AuthUserRevokeRoleRequest(name="root", role="root"))
        with self.assertRaises(errors.InvalidAuthMgmtError):
            self.store.role_delete(rpc_pb2.AuthRoleDeleteRequest(role="root"))
        rev = self.store.revision
        self.store.auth_disable()
        self.assertEqual((self.store.enabled, self.store.revision), (False, rev + 1))
        self.store.user_revoke_role(rpc_pb2.AuthUserRevokeRoleRequest(name="root", role="root"))
        self.store.role_delete(rpc_pb2.AuthRoleDeleteRequest(role="root"))
        self.store.user_delete(rpc_pb2.AuthUserDeleteRequest(name="root"))

    def test_authenticate(self) -> None:
        """Passwords are checked only while enabled; tokens belong to users; disable
        forgets every token."""
        self.add_root()
        with self.assertRaises(errors.AuthNotEnabledError):
            self.store.check_password("root", "pw")
        with self.assertRaises(errors.AuthNotEnabledError):
            self.store.authenticate("root", "abc", 1, now=0)
        self.store.auth_enable()
        self.assertEqual(self.store.check_password("root", "pw"), self.store.revision)
        for name, pw in (("root", "bad"), ("nobody", "pw")):
            with self.assertRaises(errors.AuthFailedError):
                self.store.check_password(name, pw)
        token = self.store.authenticate("root", "abc", 9, now=0)
        self.assertEqual(token, "abc.9")
        self.assertEqual(self.store.auth_info_from_token(token, now=1), self.info("root"))
        self.store.auth_disable()
        self.assertIsNone(self.store.auth_info_from_token(token, now=1))

    def test_no_password_user(self) -> None:
        """A user added without a password cannot authenticate."""
        self.add_root()
        self.store.user_add(
            rpc_pb2.AuthUserAddRequest(name="np", options=auth_pb2.UserAddOptions(no_password=True))
        )
        self.store.auth_enable()
        with self.assertRaises(errors.NoPasswordUserError):
            self.store.check_password("np", "")
        with self.assertRaises(errors.AuthFailedError):
            self.store.authenticate("np", "abc", 1, now=0)


class PermissionTests(StoreCase):
    def setUp(self) -> None:
        super().setUp()
        self.add_root()
        self.add_user("u")
        self.store.role_add(rpc_pb2.AuthRoleAddRequest(name="r"))
        self.store.role_grant_permission(
            rpc_pb2.AuthRoleGrantPermissionRequest(
                name="r", perm=P(key=b"k", range_end=b"l", permType=P.READ)
            )
        )
        self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="u", role="r"))
        self.store.auth_enable()

    def test_disabled_allows_all(self) -> None:
        """With auth off every check passes, even for no user."""
        self.store.auth_disable()
        self.store.is_put_permitted(AuthInfo(), b"x")
        self.store.is_admin_permitted(None)

    def test_checks(self) -> None:
        """Read on the prefix only; writes denied; root may do anything."""
        u = self.info("u")
        self.store.is_range_permitted(u, b"k1", b"")
        self.store.is_range_permitted(u, b"k", b"l")
        with self.assertRaises(errors.PermissionDeniedError):
            self.store.is_put_permitted(u, b"k1")
        with self.assertRaises(errors.PermissionDeniedError):
            self.store.is_range_permitted(u, b"a", b"")
        with self.assertRaises(errors.PermissionDeniedError):
            self.store.is_delete_range_permitted(u, b"k", b"l")
        root = self.info("root")
        self.store.is_put_permitted(root, b"anything")
        self.store.is_delete_range_permitted(root, b"\x00", b"\x00")

    def test_no_user_and_old_revision(self) -> None:
        """No user is "user name is empty"; a revision behind the store's is old; an
        unknown user is denied."""
        with self.assertRaises(errors.UserEmptyError):
            self.store.is_range_permitted(AuthInfo(), b"k", b"")
        old = AuthInfo("u", self.store.revision - 1)
        with self.assertRaises(errors.AuthOldRevisionError):
            self.store.is_range_permitted(old, b"k", b"")
        with self.assertRaises(errors.PermissionDeniedError):
            self.store.is_range_permitted(self.info("ghost"), b"k", b"")

    def test_cache_follows_changes(self) -> None:
        """A grant or revoke takes effect on the next check."""
        u = self.info("u")
        with self.assertRaises(errors.PermissionDeniedError):
            self.store.is_put_permitted(u, b"k1")
        self.store.role_grant_permission(
            rpc_pb2.AuthRoleGrantPermissionRequest(
                name="r", perm=P(key=b"k", range_end=b"l", permType=P.READWRITE)
            )
        )
        self.store.is_put_permitted(self.info("u"), b"k1")
        self.store.user_revoke_role(rpc_pb2.AuthUserRevokeRoleRequest(name="u", role="r"))
        with self.assertRaises(errors.PermissionDeniedError):
            self.store.is_range_permitted(self.info("u"), b"k1", b"")

    def test_admin(self) -> None:
        """Admin calls need the root role: no user, an unknown one, or a plain one fail."""
        self.store.is_admin_permitted(self.info("root"))
        with self.assertRaises(errors.UserEmptyError):
            self.store.is_admin_permitted(None)
        with self.assertRaises(errors.UserNotFoundError):
            self.store.is_admin_permitted(self.info("ghost"))
        with self.assertRaises(errors.PermissionDeniedError):
            self.store.is_admin_permitted(self.info("u"))
        self.assertTrue(self.store.has_role("u", "r"))
        self.assertFalse(self.store.has_role("ghost", "r"))
        self.assertFalse(self.store.has_role("", ""))

    def test_empty_names(self) -> None:
        """Empty user and role names are never looked up in the backend (LMDB refuses
        empty keys): they are simply not found."""
        self.backend.batch_tx.get = self.refuse_empty(self.backend.batch_tx.get)
        with self.assertRaises(errors.UserNotFoundError):
            self.store.user_get(rpc_pb2.AuthUserGetRequest(name=""))
        with self.assertRaises(errors.RoleNotFoundError):
            self.store.role_get(rpc_pb2.AuthRoleGetRequest(role=""))
        with self.assertRaises(errors.UserEmptyError):
            self.store.is_admin_permitted(AuthInfo("", 0))

    @staticmethod
    def refuse_empty(get):  # type: ignore[no-untyped-def]
        def checked(bucket: bytes, key: bytes) -> bytes | None:
            if not key:
                raise ValueError("empty key")
            return get(bucket, key)

        return checked


class JWTStoreTests(StoreCase):
    def setUp(self) -> None:
        self.backend = MemoryBackend()
        secret = {"k": b"0123456789abcdef0123456789abcdef"}
        tokens = JWTTokens.from_options(
            {"sign-method": "HS256", "priv-key": "k"}, secret.__getitem__
        )
        self.store = AuthStore(self.backend.batch_tx, tokens, cost=4)

    def test_token_carries_its_revision(self) -> None:
        """A JWT stands for its user at the auth revision it was issued at; once the
        store moves on, using it is "revision in header is old" (etcd's signal to
        authenticate again); disabling auth does not revoke it (it is not stored)."""
        self.add_root()
        self.store.auth_enable()
        token = self.store.authenticate("root", "", 9, now=1000.0)
        issued = self.store.revision
        self.assertEqual(self.store.auth_info_from_token(token, now=1001.0), self.info("root"))
        self.store.is_put_permitted(self.store.auth_info_from_token(token, now=1001.0), b"k")
        self.add_user("other")
        info = self.store.auth_info_from_token(token, now=1001.0)
        self.assertEqual(info, AuthInfo("root", issued))
        with self.assertRaises(errors.AuthOldRevisionError):
            self.store.is_put_permitted(info, b"k")
        self.assertIsNone(self.store.auth_info_from_token(token, now=1000.0 + 301))


class LeaseKeysTests(StoreCase):
    def test_lease_keys_need_read(self) -> None:
        """Listing a lease's keys needs a user with read on each (etcd 3.5.9)."""
        self.add_root()
        self.add_user("u")
        self.store.role_add(rpc_pb2.AuthRoleAddRequest(name="r"))
        grant = rpc_pb2.AuthRoleGrantPermissionRequest
        self.store.role_grant_permission(
            grant(name="r", perm=P(key=b"pub/", range_end=b"pub0", permType=P.READ))
        )
        self.store.user_grant_role(rpc_pb2.AuthUserGrantRoleRequest(user="u", role="r"))
        self.store.is_lease_keys_permitted(None, [b"secret"])  # auth off: anyone
        self.store.auth_enable()
        self.store.is_lease_keys_permitted(self.info("u"), [b"pub/a", b"pub/b"])
        self.store.is_lease_keys_permitted(self.info("root"), [b"pub/a", b"secret"])
        with self.assertRaises(errors.PermissionDeniedError):
            self.store.is_lease_keys_permitted(self.info("u"), [b"pub/a", b"secret"])
        for nobody in (None, AuthInfo()):
            with self.assertRaises(errors.UserEmptyError):
                self.store.is_lease_keys_permitted(nobody, [])
