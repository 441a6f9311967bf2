"""The time the bridge adds to call setup at Kamailio (issue 14 part 1).

Starts examples/kamailio/proxy.cfg twice, once asking the bridge's HTTP lookup and
once with -A NO_BRIDGE (same script, no lookup), registers one UDP endpoint for the
called number, the attendant, the mobile and voicemail at both, and places calls
alternately through each: the time from sending the INVITE to Kamailio until the
relayed INVITE arrives at the endpoint (both sockets in this process, so loopback
costs are in both figures). The endpoint answers 486 and the caller ACKs, so every
call is a whole transaction; with the bridge each call is recorded (record=true).

    contactbridge serve --demo   # with CONTACTBRIDGE_LOOKUP__LISTEN=127.0.0.1:8081
    python3 examples/kamailio/bench.py --bridge http://127.0.0.1:8081 --key demo-tsps-key --calls 300

With --grpc 127.0.0.1:50051 a third Kamailio asks ResolveCall over gRPC from
app_python3 instead (examples/kamailio/resolve_grpc.py; Debian's
kamailio-python3-modules, grpcio from --venv-python's site-packages).
"""

import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CFG = pathlib.Path(__file__).resolve().parent / "proxy.cfg"
DID = "+4930901820"
AORS = [DID, "+4930901829", "+491701234567", "voicemail"]


def free_udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_kamailio(tmp, bridge, key, no_bridge, grpc=None):
    port, rpc = free_udp(), free_udp()
    run = pathlib.Path(tempfile.mkdtemp(dir=tmp))
    args = ["kamailio", "-DD", "-E", "-f", str(CFG), "-Y", str(run),
            "-A", f"LISTEN=udp:127.0.0.1:{port}", "-A", f'RPC_LISTEN="udp:127.0.0.1:{rpc}"',
            "-A", f'BRIDGE="{bridge}/lookup/v1/decision"', "-A", f'BRIDGE_KEY="{key}"',
            "-A", 'SIDECAR="http://127.0.0.1:9/event"']
    env = dict(os.environ)
    if no_bridge:
        args += ["-A", "NO_BRIDGE"]
    if grpc:
        args += ["-A", "GRPC_LOOKUP", "-A", f'GRPC_SCRIPT="{CFG.parent / "resolve_grpc.py"}"']
        site = subprocess.run([grpc[1], "-c", "import grpc, os; print(os.path.dirname(os.path.dirname(grpc.__file__)))"],
                              capture_output=True, text=True, check=True).stdout.strip()
        env.update(CB_GRPC=grpc[0], CB_KEY=key, CB_SITE=site)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(run / "kamailio.log", "w"), env=env)
    return proc, port


def request(method, uri, me, call_id, cseq, from_user, tag, extra="", branch=None):
    branch = branch or f"z9hG4bK-{call_id}-{method}"
    return (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me[0]}:{me[1]};branch={branch}\r\n"
            f"From: <sip:{from_user}@127.0.0.1>;tag={tag}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def header(msg, name):
    for line in msg.split("\r\n"):
        n, _, v = line.partition(":")
        if n.strip().lower() == name.lower():
            return v.strip()
    return ""


def reply(req, code, reason, to_tag="b"):
    """A response to `req` (text) with the same Via, From, To (+tag), Call-ID, CSeq."""
    lines = req.split("\r\n")
    keep = [l for l in lines[1:] if l.split(":")[0].strip().lower() in ("via", "from", "call-id", "cseq")]
    to = header(req, "To")
    if ";tag=" not in to:
        to += f";tag={to_tag}"
    return (f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join(keep) + f"\r\nTo: {to}\r\nContent-Length: 0\r\n\r\n").encode()


def register(ep, port):
    me = ep.getsockname()
    for i, aor in enumerate(AORS):
        uri = f"sip:{aor}@127.0.0.1:{port}"
        ep.sendto(request("REGISTER", f"sip:127.0.0.1:{port}", me, f"reg-{port}-{i}", 1, aor, "r",
                          f"Contact: <sip:{aor}@{me[0]}:{me[1]}>\r\nExpires: 3600\r\n").replace(
                              f"To: <sip:127.0.0.1:{port}>".encode(), f"To: <{uri}>".encode()), ("127.0.0.1", port))
        msg = ep.recv(65535).decode()
        if not msg.startswith("SIP/2.0 200"):
            raise SystemExit(f"REGISTER {aor}: {msg.splitlines()[0]}")


def call(caller, ep, port, n, cli):
    me = caller.getsockname()
    uri = f"sip:{DID}@127.0.0.1:{port}"
    call_id = f"bench-{port}-{n}"
    t0 = time.perf_counter()
    caller.sendto(request("INVITE", uri, me, call_id, 1, cli, f"c{n}", f"Contact: <sip:{cli}@{me[0]}:{me[1]}>\r\n"),
                  ("127.0.0.1", port))
    while True:
        msg, src = ep.recvfrom(65535)
        msg = msg.decode(errors="replace")
        if msg.startswith("INVITE") and header(msg, "Call-ID") == call_id:
            t1 = time.perf_counter()
            ep.sendto(reply(msg, 486, "Busy Here"), src)
            break
    # The caller's side: wait for the final reply, ACK it (same branch as the INVITE).
    while True:
        msg = caller.recv(65535).decode(errors="replace")
        if msg.startswith("SIP/2.0 ") and int(msg[8:11]) >= 200:
            to = header(msg, "To")
            ack = request("ACK", uri, me, call_id, 1, cli, f"c{n}", branch=f"z9hG4bK-{call_id}-INVITE")
            caller.sendto(ack.replace(f"To: <{uri}>".encode(), f"To: {to}".encode()), ("127.0.0.1", port))
            break
    # Drain the ACK Kamailio sends the endpoint for the 486.
    ep.settimeout(0.05)
    try:
        while True:
            ep.recv(65535)
    except socket.timeout:
        pass
    ep.settimeout(5)
    return (t1 - t0) * 1000


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bridge", default="http://127.0.0.1:8081")
    p.add_argument("--key", default="demo-tsps-key")
    p.add_argument("--calls", type=int, default=300, help="calls per configuration")
    p.add_argument("--grpc", help="also measure ResolveCall over gRPC from app_python3 (host:port of the bridge)")
    p.add_argument("--venv-python", default=".tools/venv/bin/python", help="a Python with grpcio (for --grpc)")
    p.add_argument("--cli", default="+49305550199", help="the caller (default: a known contact, not blocked)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cb-kam-bench-") as tmp:
        procs = []
        try:
            with_bridge, port_b = start_kamailio(tmp, a.bridge, a.key, False)
            procs.append(with_bridge)
            without, port_n = start_kamailio(tmp, a.bridge, a.key, True)
            procs.append(without)
            ports = {"http lookup": port_b, "no bridge": port_n}
            if a.grpc:
                over_grpc, port_g = start_kamailio(tmp, a.bridge, a.key, False, (a.grpc, a.venv_python))
                procs.append(over_grpc)
                ports["grpc (py)"] = port_g
            time.sleep(3 if a.grpc else 1.5)
            ep = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            ep.bind(("127.0.0.1", 0))
            ep.settimeout(5)
            caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            caller.bind(("127.0.0.1", 0))
            caller.settimeout(5)
            for port in ports.values():
                register(ep, port)
            for n in range(20):  # warm-up: connections, caches
                for port in ports.values():
                    call(caller, ep, port, 10_000 + n, a.cli)
            times = {name: [] for name in ports}
            for n in range(a.calls):
                for name, port in ports.items():
                    times[name].append(call(caller, ep, port, n, a.cli))
            for name, t in times.items():
                t.sort()
                p99 = t[min(len(t) - 1, int(len(t) * 0.99))]
                print(f"{name:11} {len(t)} calls: median {statistics.median(t):.2f} ms, p99 {p99:.2f} ms, max {t[-1]:.2f} ms")
            nb = statistics.median(times["no bridge"])
            for name, t in times.items():
                if name != "no bridge":
                    m = statistics.median(t)
                    print(f"{name} adds: median {m - nb:.2f} ms (ratio {m / nb:.1f}x)")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
