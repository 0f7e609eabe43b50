"""Raft transport between members over the peer URLs.

``transport.Transport`` is the service the server talks to. Underneath: ``codec``
(frames), ``handshake`` (the HTTP upgrade that opens a link), ``link`` (pings, idle
timeout), ``stream`` and ``dialer`` (the outbound message stream, redialed with
backoff), ``peer`` (one remote member's queue), ``snapshot`` (database transfer),
``inbound`` (the accepting end), ``port`` (raft links and HTTP on one port),
``endpoint`` (peer URL to client endpoint) and ``http`` (``/version``, ``/members``).
"""
