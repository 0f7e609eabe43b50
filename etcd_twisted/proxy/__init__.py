"""The seed's other start-up paths: etcd's L4 ``gateway`` and the ``grpc-proxy``."""
