#!/usr/bin/env python3
"""Prints a login link to a user's notification window, issued by a running
bridge through the Admin RPC IssueWebLogin (an admin key of the user's tenant)."""

import argparse
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "examples" / "python"))
import cb_stubs  # noqa: E402

import grpc  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--key", default="demo-admin-key")
    p.add_argument("user")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="contactbridge-stubs-") as tmp:
        stubs = cb_stubs.load(tmp)
        pb, rpc = stubs.admin, stubs.admin_rpc
        with grpc.insecure_channel(a.addr) as channel:
            r = rpc.AdminStub(channel).IssueWebLogin(
                pb.IssueWebLoginRequest(user_id=a.user, valid_seconds=600),
                metadata=[("authorization", f"Bearer {a.key}")],
                timeout=10,
            )
            print(r.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
