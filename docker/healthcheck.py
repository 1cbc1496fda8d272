"""Container health checks without curl or procps (slim images have neither).

    healthcheck.py http URL         the URL answers 2xx
    healthcheck.py tcp HOST PORT    a TCP connection opens
    healthcheck.py process NAME     a process whose command line contains NAME runs

Exit 0 when healthy, 1 otherwise (Docker's HEALTHCHECK contract).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request


def healthy(kind: str, *args: str) -> bool:
    """Whether the check ``kind`` with ``args`` passes."""
    if kind == "http":
        with urllib.request.urlopen(args[0], timeout=3) as resp:
            return 200 <= resp.status < 300
    if kind == "tcp":
        with socket.create_connection((args[0], int(args[1])), timeout=3):
            return True
    if kind == "process":
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if args[0].encode() in f.read():
                        return True
            except OSError:
                continue
        return False
    raise SystemExit(f"unknown check {kind!r}")


if __name__ == "__main__":
    try:
        ok = healthy(*sys.argv[1:])
    except (OSError, IndexError, ValueError) as exc:
        print(exc, file=sys.stderr)
        ok = False
    sys.exit(0 if ok else 1)
