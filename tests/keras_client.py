"""``python tests/keras_client.py SOCKET ARGS...``: ``keras_ref.port_check ARGS...`` (or
``keras_ref run ...``) run by the test session's warm Keras worker (tests/kcache.py
``serve_checks``) instead of a new Keras process. Standard library only, so that it starts in a few milliseconds."""

from __future__ import annotations

import json
import os
import socket
import sys


def main(argv: list[str]) -> int:
    path, args = argv[0], argv[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall((json.dumps({"argv": args, "cwd": os.getcwd()}) + "\n").encode())
        reply = json.loads(s.makefile().readline())
    if not reply.get("ok"):
        sys.stderr.write(reply.get("error", "the Keras worker failed") + "\n")
        return 2
    sys.stdout.write(reply.get("stdout", ""))
    sys.stderr.write(reply["stderr"])
    return reply["rc"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
