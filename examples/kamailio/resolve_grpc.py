"""ResolveCall over gRPC from inside Kamailio (app_python3): the alternative to the
HTTP lookup that examples/kamailio/bench.py measures (proxy.cfg with -A GRPC_LOOKUP).

Kamailio forks its SIP workers after loading this file; grpcio channels do not
survive a fork, so each worker makes its own channel in child_init. Configured by
the environment: CB_GRPC (host:port), CB_KEY (a tsps key), CB_SITE (a
site-packages directory with grpcio and grpcio-tools, e.g. the tools venv's).
"""

import os
import pathlib
import sys
import tempfile

if os.environ.get("CB_SITE"):
    sys.path.append(os.environ["CB_SITE"])
# grpcio's fork handlers are for Python's os.fork; Kamailio forks from C.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import KSR  # noqa: E402

# The stub generation shared with examples/python/resolve_call.py.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))
import cb_stubs  # noqa: E402

METHODS = {1: "forward", 2: "ivr", 3: "notify", 4: "voicemail", 5: "attendant", 6: "reject"}


def _stubs():
    out = tempfile.mkdtemp(prefix="cb-kamailio-stubs-")
    stubs = cb_stubs.load(out)
    return stubs.pb, stubs.rpc


class Resolver:
    def __init__(self):
        self.pb, self.rpc = _stubs()
        self.metadata = [("authorization", "Bearer " + os.environ.get("CB_KEY", ""))]
        self.stub = None

    def child_init(self, rank):
        import grpc

        self.grpc = grpc
        self.stub = self.rpc.CallHandlingStub(grpc.insecure_channel(os.environ.get("CB_GRPC", "127.0.0.1:50051")))
        return 0

    def resolve(self, msg, args=None):
        """Sets $var(method), $var(target), $var(call), $var(code); $var(method) "" if no decision."""
        for name in ("method", "target", "call", "code"):
            KSR.pv.sets(f"$var({name})", "")
        if self.stub is None:
            return 1
        req = self.pb.ResolveCallRequest(called_number=KSR.pv.get("$rU") or "", cli=KSR.pv.get("$fU") or "",
                                         tsps_call_id=KSR.pv.get("$ci") or "")
        try:
            r = self.stub.ResolveCall(req, metadata=self.metadata, timeout=1)
        except self.grpc.RpcError as e:
            KSR.warn(f"contactbridge: ResolveCall failed: {e.code()}\n")
            return 1
        KSR.pv.sets("$var(method)", METHODS.get(r.method.kind, ""))
        KSR.pv.sets("$var(target)", "".join(c for c in r.target if c.isdigit() or c == "+"))
        KSR.pv.sets("$var(call)", r.call_id)
        KSR.pv.sets("$var(code)", r.handling_code)
        return 1


def mod_init():
    return Resolver()
