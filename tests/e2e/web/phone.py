#!/usr/bin/env python3
"""A phone system for tests/e2e/web/window.mjs, driven one JSON command a line
on stdin, answering one JSON object a line on stdout (with `sent_ms`, the time
the RPC was sent, ms since the epoch):

  {"op": "watch"}                              open a WatchDirectives stream; each directive
                                               arrives as {"directive": …, "received_ms": …}
  {"op": "unwatch"}                            cancel it (the phone system is gone)
  {"op": "resolve", "cli": …, "tsps_call_id": …}   ResolveCall -> {"call_id": …}
  {"op": "directive", "call_id": …, "action": "accept", "target": …, "by": …}   SendDirective
  {"op": "report", "call_id": …, "kind": "answered", "target": …, "by": …}       ReportCallEvent
  {"op": "dial", "user_id": …, "target": …}   SendDirective DIAL

An RPC error answers {"error": code, "message": …}."""

import argparse
import json
import pathlib
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "examples" / "python"))
import cb_stubs  # noqa: E402

import grpc  # noqa: E402

lock = threading.Lock()


def out(obj) -> None:
    with lock:
        print(json.dumps(obj), flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--key", default="demo-tsps-key")
    p.add_argument("--called", default="+49 30 901820")
    a = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="contactbridge-stubs-") as tmp:
        stubs = cb_stubs.load(tmp)
        pb, rpc, types = stubs.pb, stubs.rpc, stubs.types
        md = [("authorization", f"Bearer {a.key}")]
        name = lambda e, v: e.Name(v).split("_", 2)[-1].lower()  # noqa: E731
        with grpc.insecure_channel(a.addr) as channel:
            stub = rpc.CallHandlingStub(channel)
            stream = None

            def watch(s) -> None:
                try:
                    for d in s:
                        out({"directive": name(pb.DirectiveAction, d.action), "target": d.target, "by": d.by,
                             "call_id": d.call_id, "user": d.user_id, "tsps_call_id": d.tsps_call_id,
                             "received_ms": time.time() * 1000})
                except grpc.RpcError:
                    pass

            out({"ready": True})
            for line in sys.stdin:
                cmd = json.loads(line)
                op = cmd["op"]
                sent = time.time() * 1000
                try:
                    if op == "watch":
                        stream = stub.WatchDirectives(pb.WatchDirectivesRequest(), metadata=md)
                        threading.Thread(target=watch, args=(stream,), daemon=True).start()
                        time.sleep(0.3)  # the stream is open before anything is sent
                        out({"op": op, "ok": True})
                    elif op == "unwatch":
                        if stream is not None:
                            stream.cancel()
                            stream = None
                        time.sleep(0.3)  # the server sees the stream gone
                        out({"op": op, "ok": True})
                    elif op == "resolve":
                        r = stub.ResolveCall(pb.ResolveCallRequest(called_number=a.called, cli=cmd["cli"],
                                                                   tsps_call_id=cmd.get("tsps_call_id", "")),
                                             metadata=md, timeout=10)
                        out({"op": op, "call_id": r.call_id, "sent_ms": sent})
                    elif op in ("directive", "dial"):
                        action = "DIAL" if op == "dial" else cmd["action"].upper()
                        r = stub.SendDirective(pb.SendDirectiveRequest(
                            call_id=cmd.get("call_id", ""), action=pb.DirectiveAction.Value("DIRECTIVE_ACTION_" + action),
                            target=cmd.get("target", ""), by=cmd.get("by", ""), user_id=cmd.get("user_id", "")),
                            metadata=md, timeout=10)
                        out({"op": op, "delivered": r.delivered, "sent_ms": sent})
                    elif op == "report":
                        stub.ReportCallEvent(pb.ReportCallEventRequest(
                            call_id=cmd["call_id"], kind=types.CallEventKind.Value("CALL_EVENT_KIND_" + cmd["kind"].upper()),
                            target=cmd.get("target", ""), by=cmd.get("by", "")), metadata=md, timeout=10)
                        out({"op": op, "ok": True, "sent_ms": sent})
                    else:
                        out({"op": op, "error": "unknown op"})
                except grpc.RpcError as e:
                    out({"op": op, "error": e.code().name, "message": e.details(), "sent_ms": sent})
            if stream is not None:
                stream.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
