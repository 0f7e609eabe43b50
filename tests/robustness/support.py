"""Small builders for hand-made histories."""

from robustness.history import KeyValue, Operation, Range, Request, Response


def op(client: int, call: float, ret: float, request: Request, response: Response | None):
    """An operation (positional shorthand)."""
    return Operation(client, call, ret, request, response)


def kv(key: str, value: str, create: int, mod: int, version: int = 1, lease: int = 0):
    """A KeyValue (shorthand)."""
    return KeyValue(key, value, create, mod, version, lease)


def got(revision: int, *kvs: KeyValue) -> Response:
    """A range response holding `kvs`."""
    return Response(revision, kvs=kvs, count=len(kvs))


def get(key: str, **kw) -> Range:
    """A range over one key."""
    return Range(key, **kw)
