"""The etcd services: protobuf and JSON requests translated into server calls."""
