"""Tests for etcd_twisted.mvcc."""
