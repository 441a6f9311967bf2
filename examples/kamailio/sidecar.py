"""Kamailio's link to contactbridge's gRPC API (examples/kamailio/proxy.cfg).

Two jobs, one small process next to Kamailio:

* Call events: Kamailio's timer process GETs
  /event?call=<bridge call id>&kind=routed|forwarded|answered|ended[&target=..][&sip=..&cseq=..]
  and the sidecar reports them with ReportCallEvent (routed only tells it which
  SIP transaction carries the call).
* Overrides: it follows WatchDirectives for the key's tenant; for a directive on
  a call that still rings it stores the new route in Kamailio's "override" htable
  and cancels the ringing branch (jsonrpcs over UDP: htable.sets, tm.cancel);
  Kamailio's failure_route then relays the call to the new target.

Why a sidecar and not grpcio inside Kamailio (app_python3): Kamailio forks its
SIP workers after loading the script; grpcio's channels and threads do not
survive a fork, so each worker would need its own channel made in child init,
and a WatchDirectives stream (one per tenant, long-lived) has no place in a SIP
worker at all. The decision itself takes the HTTP lookup (http_client, one
request per INVITE, no threads in the worker).

    python sidecar.py --bridge 127.0.0.1:50051 --key demo-tsps-key \
        --listen 127.0.0.1:8082 --kamailio-rpc 127.0.0.1:8083
"""

import argparse
import json
import logging
import pathlib
import queue
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

# The stub generation shared with examples/python/resolve_call.py.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))
import cb_stubs  # noqa: E402

log = logging.getLogger("sidecar")


class KamailioRpc:
    """jsonrpcs over a UDP datagram socket."""

    def __init__(self, addr):
        self.addr = addr
        self.ids = 0
        self.lock = threading.Lock()

    def call(self, method, *params):
        with self.lock:
            self.ids += 1
            req = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": self.ids}
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                s.bind(("127.0.0.1", 0))
                s.sendto(json.dumps(req).encode(), self.addr)
                reply = json.loads(s.recv(65535))
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result")


class Sidecar:
    def __init__(self, args, pb, types, stub):
        self.pb, self.types, self.stub = pb, types, stub
        self.metadata = [("authorization", f"Bearer {args.key}")]
        self.rpc = KamailioRpc(args.kamailio_rpc)
        self.events = queue.Queue()
        self.lock = threading.Lock()
        # bridge call id -> (SIP Call-ID, CSeq number) while the call is not answered or ended
        self.ringing = {}
        # directives that arrived before Kamailio said where the call is
        self.pending = {}

    # --- events from Kamailio -------------------------------------------------
    def event(self, q):
        call, kind = q.get("call", ""), q.get("kind", "")
        if not call or kind not in ("routed", "forwarded", "answered", "ended"):
            return False
        if kind == "routed":
            sip, cseq = q.get("sip", ""), q.get("cseq", "").split(" ")[0]
            with self.lock:
                self.ringing[call] = (sip, cseq)
                directive = self.pending.pop(call, None)
            if directive is not None:
                self.apply(directive)
            return True
        if kind in ("answered", "ended"):
            with self.lock:
                self.ringing.pop(call, None)
        self.events.put((call, kind, q.get("target", "")))
        return True

    def report_events(self):
        kinds = {
            "forwarded": self.types.CALL_EVENT_KIND_FORWARDED,
            "answered": self.types.CALL_EVENT_KIND_ANSWERED,
            "ended": self.types.CALL_EVENT_KIND_ENDED,
        }
        while True:
            call, kind, target = self.events.get()
            req = self.pb.ReportCallEventRequest(call_id=call, kind=kinds[kind], target=target)
            # The bridge down or restarting: retry for a minute (events stay in order).
            deadline, backoff = time.monotonic() + 60, 0.2
            while True:
                try:
                    self.stub.ReportCallEvent(req, metadata=self.metadata, timeout=5)
                    log.info("reported %s for call %s", kind, call)
                    break
                except grpc.RpcError as e:
                    if e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION):
                        log.warning("the bridge refused %s for call %s: %s", kind, call, e.details())
                        break
                    if time.monotonic() > deadline:
                        log.warning("dropped %s for call %s: the bridge is unreachable (%s)", kind, call, e.code())
                        break
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2)

    # --- directives from the bridge --------------------------------------------
    def watch_directives(self):
        backoff = 0.2
        while True:
            started = time.monotonic()
            try:
                stream = self.stub.WatchDirectives(self.pb.WatchDirectivesRequest(), metadata=self.metadata)
                for directive in stream:
                    self.on_directive(directive)
            except grpc.RpcError as e:
                log.warning("WatchDirectives ended (%s); reconnecting", e.code())
            if time.monotonic() - started > 5:
                backoff = 0.2
            time.sleep(backoff)
            backoff = min(backoff * 2, 2)

    def on_directive(self, d):
        with self.lock:
            if d.call_id not in self.ringing:
                self.pending[d.call_id] = d
                if len(self.pending) > 1000:
                    self.pending.pop(next(iter(self.pending)))
                return
        self.apply(d)

    def apply(self, d):
        pb = self.pb
        if d.action == pb.DIRECTIVE_ACTION_VOICEMAIL:
            route = "voicemail"
        elif d.action == pb.DIRECTIVE_ACTION_REJECT:
            route = "reject"
        elif d.action == pb.DIRECTIVE_ACTION_FORWARD:
            number = "".join(c for c in d.target if c.isdigit() or c == "+")
            if not number:
                log.warning("directive for call %s: forward without a number", d.call_id)
                return
            route = "forward:" + number
        else:
            return  # ACCEPT: the user's phone keeps ringing
        with self.lock:
            where = self.ringing.pop(d.call_id, None)
        if where is None:
            return
        sip, cseq = where
        try:
            self.rpc.call("htable.sets", "override", sip, route)
            self.rpc.call("tm.cancel", sip, cseq)
            log.info("call %s (%s): %s by %s", d.call_id, sip, route, d.by)
        except (OSError, RuntimeError, ValueError) as e:
            log.warning("could not move call %s: %s", d.call_id, e)


def handler(sidecar):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            ok = url.path == "/event" and sidecar.event(q)
            self.send_response(204 if ok else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bridge", default="127.0.0.1:50051", help="the bridge's gRPC host:port")
    parser.add_argument("--key", default="demo-tsps-key", help="an API key of scope tsps")
    parser.add_argument("--listen", default="127.0.0.1:8082", help="where Kamailio posts call events")
    parser.add_argument("--kamailio-rpc", default="127.0.0.1:8083", help="Kamailio's jsonrpcs UDP socket")
    args = parser.parse_args()
    host, port = args.kamailio_rpc.rsplit(":", 1)
    args.kamailio_rpc = (host, int(port))
    logging.basicConfig(level=logging.INFO, format="sidecar: %(message)s")

    with tempfile.TemporaryDirectory(prefix="contactbridge-stubs-") as tmp:
        stubs = cb_stubs.load(tmp)
        pb, rpc, types = stubs.pb, stubs.rpc, stubs.types
        # Reconnect within 2 s of the bridge coming back (grpcio's default waits up to 120 s).
        channel = grpc.insecure_channel(args.bridge, options=[
            ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000)])
        sidecar = Sidecar(args, pb, types, rpc.CallHandlingStub(channel))
        threading.Thread(target=sidecar.report_events, daemon=True).start()
        threading.Thread(target=sidecar.watch_directives, daemon=True).start()
        lhost, lport = args.listen.rsplit(":", 1)
        server = ThreadingHTTPServer((lhost, int(lport)), handler(sidecar))
        print(f"sidecar: events on http://{args.listen}/event", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
