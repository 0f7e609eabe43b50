"""Tests for etcd_twisted.wal."""
