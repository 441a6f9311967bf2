#!/usr/bin/env python3
"""Resolves one call against a running contactbridge, from Python.

The phone system need not be written in Rust: this client generates its stubs
from the bridge's schemas (schemas/contactbridge/v1/*.proto) with grpcio-tools
at run time, into a temporary directory, and calls ResolveCall and
GetCallerContext with an API key.

    pip install -r examples/python/requirements.txt
    contactbridge serve --demo &
    python3 examples/python/resolve_call.py --addr 127.0.0.1:50051 --key demo-tsps-key \
        --called "+49 30 901820" --cli "+49 30 1234567"
"""

import argparse
import sys
import tempfile

import grpc

import cb_stubs

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:50051", help="the bridge's gRPC host:port")
    parser.add_argument("--key", default="demo-tsps-key", help="an API key of scope tsps")
    parser.add_argument("--called", default="+49 30 901820", help="the called number (the user's DID)")
    parser.add_argument("--cli", default="+49 30 1234567", help="the calling number as received")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="contactbridge-stubs-") as tmp:
        stubs = cb_stubs.load(tmp)
        pb, rpc, types = stubs.pb, stubs.rpc, stubs.types

        metadata = [("authorization", f"Bearer {args.key}")]
        with grpc.insecure_channel(args.addr) as channel:
            stub = rpc.CallHandlingStub(channel)
            try:
                d = stub.ResolveCall(
                    pb.ResolveCallRequest(called_number=args.called, cli=args.cli, tsps_call_id="python-1"),
                    metadata=metadata,
                    timeout=10,
                )
            except grpc.RpcError as e:
                print(f"ResolveCall failed: {e.code().name}: {e.details()}", file=sys.stderr)
                return 1
            method = types.HandlingMethodKind.Name(d.method.kind).removeprefix("HANDLING_METHOD_KIND_").lower()
            status = types.Status.Name(d.status).removeprefix("STATUS_").lower()
            caller = d.candidates[0].display_name if d.candidates else "no contact"
            print(f"call {d.call_id} for {d.user_display_name} ({d.user_id})")
            print(f"caller: {caller}; handling code: {d.handling_code}; status: {status}")
            print(f"method: {method}{(' ' + d.target) if d.target else ''}")

            ctx = stub.GetCallerContext(
                pb.GetCallerContextRequest(user_id=d.user_id, cli=args.cli), metadata=metadata, timeout=10
            )
            for m in list(ctx.mail_received) + list(ctx.mail_sent):
                print(f"mail: {m.subject}")
            print(f"previous calls: {len(ctx.calls)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
