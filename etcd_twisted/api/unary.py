"""Turning server calls into gRPC unary handlers: errors, headers and ``hasleader``."""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutine
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.errors import to_grpc_error
from etcd_twisted.auth.errors import AuthError
from etcd_twisted.grpc import GrpcError, ServerContext, StatusCode
from etcd_twisted.server.errors import NoLeaderError, NotSupportedForLearnerError
from etcd_twisted.tls.context import common_name


class HeaderSource(Protocol):
    """What fills a response header (the server)."""

    cluster_id: int
    member_id: int
    leader_id: int
    is_learner: bool

    @property
    def term(self) -> int: ...

    def header(self, revision: int = 0) -> rpc_pb2.ResponseHeader: ...


def fill_header(server: HeaderSource, response: Any) -> Any:
    """Set cluster id, member id and raft term; the revision too if the handler left it 0."""
    header = response.header
    header.cluster_id = server.cluster_id
    header.member_id = server.member_id
    header.raft_term = server.term
    if not header.revision:
        header.revision = server.header().revision
    return response


def require_leader(server: HeaderSource, ctx: ServerContext) -> None:
    """Fail with "no leader" when the client asked for one (``hasleader``) and there is none."""
    if not server.leader_id and ctx.metadata.get("hasleader") == "true":
        raise NoLeaderError()


def check_learner(server: HeaderSource, request: Any) -> None:
    """A learner serves only Status and serializable ranges (etcd 3.5's rule)."""
    if not server.is_learner:
        return
    if isinstance(request, rpc_pb2.StatusRequest):
        return
    if isinstance(request, rpc_pb2.RangeRequest) and request.serializable:
        return
    raise NotSupportedForLearnerError()


def token_of(ctx: ServerContext) -> str | None:
    """The auth token a call carries (``token`` metadata, or ``authorization``), if any."""
    for key in ("token", "authorization"):
        value = ctx.metadata.get(key)
        if value is not None:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def common_name_of(ctx: ServerContext) -> str | None:
    """The Subject CN of the client's TLS certificate ("" if it has none), or None
    without a certificate (plaintext, no client cert, or the JSON gateway). As etcd, a
    call with ``grpcgateway-accept`` metadata (etcd's gateway, a gRPC client holding
    the server's certificate) never takes its CN."""
    if ctx.metadata.get("grpcgateway-accept") is not None:
        return None
    return certificate_common_name(ctx.peer_certificate())


def certificate_common_name(cert: Any) -> str | None:
    """The Subject CN of an ``OpenSSL.crypto.X509`` as Go reads it ("" without one);
    None for no certificate."""
    return None if cert is None else common_name(cert.to_cryptography())


def auth_info_of(server: Any, ctx: ServerContext) -> Any:
    """Who the call comes from (value or Deferred): its token's user, else (as etcd,
    with ``--client-cert-auth``) its certificate's CN; None for no one."""
    return server.auth_frontend.auth_info(token_of(ctx), common_name_of(ctx))


def with_auth(server: Any, ctx: ServerContext, call: Callable[[Any], Any]) -> Deferred[Any]:
    """``call(auth_info)`` once the call's credentials are resolved (None without any)."""
    d = maybeDeferred(auth_info_of, server, ctx)
    return d.addCallback(call)


def unary(
    server: HeaderSource,
    call: Callable[..., Any],
    auth: bool = False,
    admin: bool = False,
) -> Callable[[Any, ServerContext], Any]:
    """A unary handler running ``call(request)`` (value or Deferred) with etcd's conventions;
    it answers with a value (raising `GrpcError`) when the call does, else a Deferred.

    With ``auth``, the call's token is resolved first and the call is
    ``call(request, auth_info)``; with ``admin`` (the Maintenance calls etcd guards),
    the token's user must have the root role (while auth is enabled) and the call is
    ``call(request)``. etcd 3.5.1's maintenance server returns those auth errors
    unconverted, so clients see them as UNKNOWN with the store's text ("auth:
    permission denied"); so do ours.
    """

    def handler(request: Any, ctx: ServerContext) -> Any:
        def run() -> Any:
            require_leader(server, ctx)
            check_learner(server, request)
            if auth:
                # with_auth's work, without a Deferred when the token resolves at once
                info = auth_info_of(server, ctx)
                if isinstance(info, Deferred):
                    return info.addCallback(lambda info: call(request, info))
                return call(request, info)
            if admin:

                def checked(info: Any) -> Any:
                    try:
                        server.auth_frontend.check_admin(info)  # type: ignore[attr-defined]
                    except AuthError as e:
                        raise GrpcError(StatusCode.UNKNOWN, str(e)) from None
                    return call(request)

                def unconverted(failure: Failure) -> None:
                    failure.trap(AuthError)
                    raise GrpcError(StatusCode.UNKNOWN, str(failure.value))

                return with_auth(server, ctx, lambda info: info).addCallbacks(checked, unconverted)
            return call(request)

        # maybeDeferred(run).addCallback(fill_header).addErrback(_raise), without the
        # Deferred when run answers at once (most reads): a value or a GrpcError raised.
        try:
            response = run()
            if iscoroutine(response):
                response = Deferred.fromCoroutine(response)
            elif isinstance(response, Failure):
                response.raiseException()
            elif not isinstance(response, Deferred):
                return fill_header(server, response)
        except Exception:
            raise to_grpc_error(Failure()) from None
        response.addCallback(lambda response: fill_header(server, response))
        response.addErrback(_raise)
        return response

    return handler


def _raise(failure: Failure) -> None:
    raise to_grpc_error(failure)
