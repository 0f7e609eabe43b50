"""Tests for etcd_twisted.backend."""
