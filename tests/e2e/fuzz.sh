#!/usr/bin/env bash
# The fuzz targets (fuzz/, FUZZING.md), each for a bounded time: fails on a
# crash, a hang or a memory blow-up, printing the input that did it.
set -euo pipefail
exec "$(cd "$(dirname "$0")/../.." && pwd)/fuzz/run"
