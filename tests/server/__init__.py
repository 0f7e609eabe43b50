"""Tests for etcd_twisted.server."""
