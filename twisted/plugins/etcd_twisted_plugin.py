"""twistd plugin: ``twistd etcd`` runs an etcd-twisted member."""

from twisted.application.service import ServiceMaker

etcd = ServiceMaker(
    "etcd-twisted",
    "etcd_twisted.tap",
    "An etcd v3 server (gRPC and JSON gateway) on Twisted.",
    "etcd",
)
