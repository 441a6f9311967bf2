#!/usr/bin/env python3
"""Builds the fuzz targets' seed corpora from the repository's fixtures.

    python3 fuzz/seeds.py OUT_DIR FIXTURE_DIR...

Writes OUT_DIR/<target>/<name> for the targets vcard, ical, phone and
grpc_convert: the .vcf and .ics fixtures as they are, every TEL value of the
vCards (with each region byte the phone target knows), and protobuf-encoded
gRPC requests built from those numbers and the demo user. Seeds are made at run
time so that the repository carries none of them (fuzz/regressions/ holds the
inputs that once failed; they are added to the corpora as they are)."""

import hashlib
import os
import re
import sys
from pathlib import Path


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """One protobuf field: int -> varint, str/bytes -> length-delimited."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def msg(*fields):
    return b"".join(field(n, v) for n, v in fields if v not in (None, "", 0))


def timestamp(seconds, nanos=0):
    return msg((1, seconds), (2, nanos))


def write(out, target, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main():
    out = Path(sys.argv[1])
    fixtures = [Path(p) for p in sys.argv[2:]]
    files = [f for d in fixtures if d.exists() for f in sorted(d.rglob("*")) if f.is_file()]
    numbers = set()
    for f in files:
        data = f.read_bytes()
        if f.suffix.lower() == ".vcf":
            write(out, "vcard", data)
            for line in data.decode("utf-8", "replace").splitlines():
                if re.match(r"^(item\d+\.)?TEL\b", line, re.I) and ":" in line:
                    numbers.add(line.split(":", 1)[1].strip().removeprefix("tel:"))
        elif f.suffix.lower() == ".ics":
            write(out, "ical", data)
    numbers |= {"+49 30 901820", "030 1234-0", "+1 (650) 253-0000 ext. 123", "sip:+4930123456@pbx", "anonymous", "4711"}

    # phone: the first byte picks the region (phone.rs: REGIONS, and one past the end = none).
    for n in sorted(numbers):
        for pick in (0, 1, 2, 12):
            write(out, "phone", bytes([pick]) + n.encode())

    # grpc_convert: the first byte picks the request (grpc_convert.rs), its high nibble the region.
    handling = msg(
        (1, msg((1, "vip"), (2, 1), (3, msg((1, 1), (2, "+49 170 1234567"))))),
        (1, msg((1, "*"), (2, 5), (3, msg((1, 4))))),
        (2, msg((1, 3))),
    )
    profile = msg(
        (1, "demo"),
        (2, "demo"),
        (3, "Dana Demo"),
        (4, "+49 30 901820"),
        (5, "DE"),
        (6, "Europe/Berlin"),
        (7, msg((1, "+49 30 901829"), (2, "dana"))),
        (8, msg((1, "Mobile"), (2, "+49 170 1234567"))),
        (9, handling),
        (10, msg((1, 30), (2, 7), (3, 5))),
        (11, msg((1, 4), (2, timestamp(1_800_000_000)))),
    )
    grpc = [
        (0, msg((1, profile))),
        (1, msg((1, "demo"), (2, "vip"), (3, 4), (4, msg((1, 1), (2, "+49 170 1234567"))))),
        (2, msg((1, "demo"), (2, "acct\x1fcontacts\x1fuid-1"), (4, "vip"))),
        (3, msg((1, "demo"), (2, 6), (3, timestamp(1_800_000_000, 5)))),
        (4, msg((1, "demo"), (2, timestamp(0)), (3, timestamp(253402300799)), (4, 10))),
        (6, msg((1, "demo"), (2, "+4930123456"), (4, msg((1, 30), (2, 30))), (6, timestamp(1_780_000_000)))),
        (7, msg((1, "call-1"), (2, 1), (3, "+49 170 1234567"), (4, "dana"))),
        (8, msg((1, "call-1"), (2, 3), (3, "+49 30 901829"), (5, timestamp(1_780_000_000)))),
        (9, msg((1, msg((1, "files-1"), (2, "demo"), (3, 4), (4, "/tmp/contacts.vcf"), (5, '{"kind":"contacts"}'), (6, "0 */15 * * * *"), (7, "Europe/Berlin"))))),
        (9, msg((1, msg((1, "dav-1"), (2, "demo"), (3, 2), (4, "https://dav.example/"), (5, '{"username":"dana"}'))), (2, "secret"))),
    ]
    for n in sorted(numbers):
        grpc.append((5, msg((1, "+49 30 901820"), (2, n), (3, "tsps-1"), (4, timestamp(1_780_000_000)))))
        grpc.append((2, msg((1, "demo"), (3, n), (4, "blocked"))))
    for pick, body in grpc:
        write(out, "grpc_convert", bytes([pick]) + body)


if __name__ == "__main__":
    main()
