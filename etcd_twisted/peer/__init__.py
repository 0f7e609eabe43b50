"""Raft transport between members over the peer URLs."""
