"""The etcd server: proposals through raft, reads, and the raft service."""
