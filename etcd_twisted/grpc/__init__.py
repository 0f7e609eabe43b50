"""A generic gRPC server on h2 and Twisted; it knows nothing of etcd.

Register handlers on a `Registry`, serve it with `GrpcFactory`::

    registry = Registry()
    registry.add_unary("/echo.Echo/Echo", EchoRequest, echo)
    reactor.listenTCP(50051, GrpcFactory(registry, reactor))
"""

from etcd_twisted.grpc.call import ServerContext, ServerStream
from etcd_twisted.grpc.metadata import Metadata
from etcd_twisted.grpc.protocol import GrpcFactory, GrpcProtocol
from etcd_twisted.grpc.service import Registry
from etcd_twisted.grpc.status import GrpcError, StatusCode

__all__ = [
    "GrpcError",
    "GrpcFactory",
    "GrpcProtocol",
    "Metadata",
    "Registry",
    "ServerContext",
    "ServerStream",
    "StatusCode",
]
