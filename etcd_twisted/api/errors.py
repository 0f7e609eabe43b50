"""The one table from our exceptions to gRPC status codes and etcd's exact messages.

Clients match these strings, so they are etcd 3.5's, byte for byte. Packages raise
their own exception classes; only this module knows how a client sees them.
"""

from __future__ import annotations

from twisted.python.failure import Failure

from etcd_twisted.apply import errors as apply_errors
from etcd_twisted.auth import errors as auth_errors
from etcd_twisted.grpc.status import GrpcError, StatusCode
from etcd_twisted.lease import errors as lease_errors
from etcd_twisted.mvcc import errors as mvcc_errors
from etcd_twisted.server import errors as server_errors
from etcd_twisted.server import reconfig

_TABLE: dict[type[BaseException], tuple[StatusCode, str]] = {
    apply_errors.EmptyKeyError: (StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    apply_errors.KeyNotFoundError: (StatusCode.INVALID_ARGUMENT, "etcdserver: key not found"),
    apply_errors.ValueProvidedError: (StatusCode.INVALID_ARGUMENT, "etcdserver: value is provided"),
    apply_errors.LeaseProvidedError: (StatusCode.INVALID_ARGUMENT, "etcdserver: lease is provided"),
    apply_errors.TooManyOpsError: (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request",
    ),
    apply_errors.DuplicateKeyError: (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request",
    ),
    apply_errors.InvalidSortOptionError: (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: invalid sort option",
    ),
    apply_errors.NoSpaceError: (
        StatusCode.RESOURCE_EXHAUSTED,
        "etcdserver: mvcc: database space exceeded",
    ),
    apply_errors.CorruptClusterError: (StatusCode.DATA_LOSS, "etcdserver: corrupt cluster"),
    # Auth (etcd 3.5.1 maps neither AuthOldRevisionError nor NoPasswordUserError: they
    # reach the client as UNKNOWN with the store's own "auth: ..." text).
    auth_errors.RootUserNotExistError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: root user does not exist",
    ),
    auth_errors.RootRoleNotExistError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: root user does not have root role",
    ),
    auth_errors.UserAlreadyExistError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: user name already exists",
    ),
    auth_errors.UserEmptyError: (StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty"),
    auth_errors.UserNotFoundError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: user name not found",
    ),
    auth_errors.RoleAlreadyExistError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: role name already exists",
    ),
    auth_errors.RoleNotFoundError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: role name not found",
    ),
    auth_errors.RoleEmptyError: (StatusCode.INVALID_ARGUMENT, "etcdserver: role name is empty"),
    auth_errors.AuthFailedError: (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: authentication failed, invalid user ID or password",
    ),
    auth_errors.PermissionNotGivenError: (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: permission not given",
    ),
    auth_errors.PermissionDeniedError: (
        StatusCode.PERMISSION_DENIED,
        "etcdserver: permission denied",
    ),
    auth_errors.RoleNotGrantedError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: role is not granted to the user",
    ),
    auth_errors.PermissionNotGrantedError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: permission is not granted to the role",
    ),
    auth_errors.AuthNotEnabledError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: authentication is not enabled",
    ),
    auth_errors.InvalidAuthTokenError: (
        StatusCode.UNAUTHENTICATED,
        "etcdserver: invalid auth token",
    ),
    auth_errors.InvalidAuthMgmtError: (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: invalid auth management",
    ),
    lease_errors.LeaseNotFoundError: (
        StatusCode.NOT_FOUND,
        "etcdserver: requested lease not found",
    ),
    lease_errors.LeaseExistsError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: lease already exists",
    ),
    lease_errors.LeaseTTLTooLargeError: (
        StatusCode.OUT_OF_RANGE,
        "etcdserver: too large lease TTL",
    ),
    mvcc_errors.CompactedError: (
        StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision has been compacted",
    ),
    mvcc_errors.FutureRevisionError: (
        StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
    ),
    reconfig.BadURLsError: (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: given member URLs are invalid",
    ),
    reconfig.MemberExistsError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: member ID already exist",
    ),
    reconfig.PeerURLExistsError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: Peer URLs already exists",
    ),
    reconfig.NotEnoughStartedMembersError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: re-configuration failed due to not enough started members",
    ),
    reconfig.MemberNotFoundError: (StatusCode.NOT_FOUND, "etcdserver: member not found"),
    reconfig.MemberRemovedError: (StatusCode.NOT_FOUND, "etcdserver: member not found"),
    reconfig.NotLearnerError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member",
    ),
    reconfig.LearnerNotReadyError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member which is in sync with leader",
    ),
    reconfig.TooManyLearnersError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: too many learner members in cluster",
    ),
    reconfig.UnhealthyError: (StatusCode.UNAVAILABLE, "etcdserver: unhealthy cluster"),
    server_errors.BadLeaderTransfereeError: (
        StatusCode.FAILED_PRECONDITION,
        "etcdserver: bad leader transferee",
    ),
    server_errors.LeaderTransferTimeoutError: (
        StatusCode.UNAVAILABLE,
        "etcdserver: request timed out, leader transfer took too long",
    ),
    server_errors.NotSupportedForLearnerError: (
        StatusCode.UNAVAILABLE,
        "etcdserver: rpc not supported for learner",
    ),
    server_errors.RequestTooLargeError: (
        StatusCode.INVALID_ARGUMENT,
        "etcdserver: request is too large",
    ),
    server_errors.TooManyRequestsError: (
        StatusCode.RESOURCE_EXHAUSTED,
        "etcdserver: too many requests",
    ),
    server_errors.StoppedError: (StatusCode.UNAVAILABLE, "etcdserver: server stopped"),
    server_errors.NoLeaderError: (StatusCode.UNAVAILABLE, "etcdserver: no leader"),
    server_errors.NotLeaderError: (StatusCode.FAILED_PRECONDITION, "etcdserver: not leader"),
    server_errors.LeaderChangedError: (StatusCode.UNAVAILABLE, "etcdserver: leader changed"),
    server_errors.TimeoutError: (StatusCode.UNAVAILABLE, "etcdserver: request timed out"),
    server_errors.CanceledError: (StatusCode.CANCELLED, "etcdserver: request canceled"),
    server_errors.CorruptError: (StatusCode.DATA_LOSS, "etcdserver: corrupt cluster"),
}


def to_grpc_error(error: BaseException | Failure) -> GrpcError:
    """The status a client sees for ``error``; unknown errors are UNKNOWN with their text."""
    exc = error.value if isinstance(error, Failure) else error
    if isinstance(exc, GrpcError):
        return exc
    for cls in type(exc).__mro__:
        row = _TABLE.get(cls)
        if row is not None:
            return GrpcError(row[0], row[1])
    return GrpcError(StatusCode.UNKNOWN, str(exc) or type(exc).__name__)


#: grpc-gateway's HTTP status for each gRPC code.
HTTP_STATUS: dict[StatusCode, int] = {
    StatusCode.OK: 200,
    StatusCode.CANCELLED: 408,
    StatusCode.UNKNOWN: 500,
    StatusCode.INVALID_ARGUMENT: 400,
    StatusCode.DEADLINE_EXCEEDED: 504,
    StatusCode.NOT_FOUND: 404,
    StatusCode.ALREADY_EXISTS: 409,
    StatusCode.PERMISSION_DENIED: 403,
    StatusCode.UNAUTHENTICATED: 401,
    StatusCode.RESOURCE_EXHAUSTED: 429,
    StatusCode.FAILED_PRECONDITION: 400,
    StatusCode.ABORTED: 409,
    StatusCode.OUT_OF_RANGE: 400,
    StatusCode.UNIMPLEMENTED: 501,
    StatusCode.INTERNAL: 500,
    StatusCode.UNAVAILABLE: 503,
    StatusCode.DATA_LOSS: 500,
}
