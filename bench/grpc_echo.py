"""Unary round-trip rate of the bare gRPC layer, measured with h2load.

    .venv/bin/python bench/grpc_echo.py [-n 100000] [-c 10] [-m 10] [--profile out.prof]

Starts an echo server (``/echo.Echo/Echo``, a protobuf message echoed back) in
a child process, checks one call with grpcio, then runs
``h2load -n N -c C -m M -d body.bin -H 'content-type: application/grpc' -H 'te: trailers'``
against it and prints h2load's summary. With ``--profile`` the server runs under
cProfile and the hottest functions are printed after the run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile

PATH = "/echo.Echo/Echo"


def serve(profile: str | None) -> None:
    """Run the echo server on a free port; print the port; stop on SIGTERM."""
    from twisted.internet import reactor

    from etcd_twisted._pb.health_pb2 import HealthCheckRequest as Msg
    from etcd_twisted.grpc import GrpcFactory, Registry

    registry = Registry()
    registry.add_unary(PATH, Msg, lambda request, ctx: request)
    port = reactor.listenTCP(0, GrpcFactory(registry, reactor), interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    if profile is None:
        reactor.run()
        return
    import cProfile

    cProfile.runctx("reactor.run()", globals(), {"reactor": reactor}, profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="requests")
    parser.add_argument("-c", type=int, default=10, help="connections")
    parser.add_argument("-m", type=int, default=10, help="concurrent streams per connection")
    parser.add_argument("--profile", help="write the server's cProfile stats here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.profile)
        return

    import grpc

    from etcd_twisted._pb.health_pb2 import HealthCheckRequest as Msg
    from etcd_twisted.grpc.framing import encode_message

    cmd = [sys.executable, __file__, "--serve"]
    if args.profile:
        cmd += ["--profile", args.profile]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(server.stdout.readline())
        request = Msg(service="x" * 64)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary(
                PATH,
                request_serializer=Msg.SerializeToString,
                response_deserializer=Msg.FromString,
            )
            assert echo(request, timeout=5) == request
        with tempfile.NamedTemporaryFile(suffix=".bin") as body:
            body.write(encode_message(request.SerializeToString()))
            body.flush()
            h2load = [
                "h2load",
                *("-n", str(args.n), "-c", str(args.c), "-m", str(args.m)),
                *("-d", body.name),
                *("-H", "content-type: application/grpc", "-H", "te: trailers"),
                f"http://127.0.0.1:{port}{PATH}",
            ]
            out = subprocess.run(h2load, capture_output=True, text=True, check=True).stdout
        print("\n".join(line for line in out.splitlines() if not line.startswith("progress")))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    if args.profile:
        import pstats

        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
