"""Tests for etcd_twisted.lease."""
