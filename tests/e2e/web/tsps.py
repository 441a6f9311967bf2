#!/usr/bin/env python3
"""The phone system's side of tests/e2e/web_window.sh: watches the directive
stream (WatchDirectives), places one call (ResolveCall), and prints, one JSON
object a line, the call and every directive it receives with the time it
arrived (ms since the epoch), until --directives have arrived."""

import argparse
import importlib
import json
import pathlib
import queue
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "examples" / "python"))
from resolve_call import generate_stubs  # noqa: E402

import grpc  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--key", default="demo-tsps-key")
    p.add_argument("--called", default="+49 30 901820")
    p.add_argument("--cli", default="+49 30 1234567")
    p.add_argument("--directives", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="contactbridge-stubs-") as tmp:
        generate_stubs(pathlib.Path(tmp))
        sys.path.insert(0, tmp)
        pb = importlib.import_module("contactbridge.v1.call_handling_pb2")
        rpc = importlib.import_module("contactbridge.v1.call_handling_pb2_grpc")
        metadata = [("authorization", f"Bearer {a.key}")]
        with grpc.insecure_channel(a.addr) as channel:
            stub = rpc.CallHandlingStub(channel)
            stream = stub.WatchDirectives(pb.WatchDirectivesRequest(), metadata=metadata)
            got: "queue.Queue" = queue.Queue()

            def watch() -> None:
                try:
                    for d in stream:
                        got.put((time.time() * 1000, d))
                except grpc.RpcError:
                    pass

            threading.Thread(target=watch, daemon=True).start()
            time.sleep(0.5)  # the stream is open before the call rings
            d = stub.ResolveCall(
                pb.ResolveCallRequest(called_number=a.called, cli=a.cli, tsps_call_id="e2e-web-1"),
                metadata=metadata,
                timeout=10,
            )
            print(json.dumps({"call_id": d.call_id, "user": d.user_id}), flush=True)
            for _ in range(a.directives):
                try:
                    at, dv = got.get(timeout=a.timeout)
                except queue.Empty:
                    print(json.dumps({"error": "no directive arrived"}), flush=True)
                    return 1
                action = pb.DirectiveAction.Name(dv.action).removeprefix("DIRECTIVE_ACTION_").lower()
                print(
                    json.dumps({"directive": action, "target": dv.target, "by": dv.by, "call_id": dv.call_id,
                                "tsps_call_id": dv.tsps_call_id, "received_ms": at}),
                    flush=True,
                )
            stream.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
