"""Run inside the sandbox (stdlib only, one file): listen on 127.0.0.1:PORT in the sandbox's own
loopback, forward every connection byte for byte to loopbot's proxy socket, and run the agent.

    python3 relay.py SOCKET PORT STDOUT STDERR -- AGENT ARGV...

The listener is bound before the agent starts, so its first request never races the relay. The
agent's stdout and stderr go to files (the sandbox caps its own output); the exit code is the
agent's. The network namespace has nothing but loopback: the socket is the only way out.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            upstream.close()
            continue
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 6 or argv[4] != "--":
        print("usage: relay.py SOCKET PORT STDOUT STDERR -- ARGV...", file=sys.stderr)
        return 2
    path, port, out, err, command = argv[0], int(argv[1]), argv[2], argv[3], argv[5:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        try:
            agent = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, check=False)
        except OSError as exc:
            print(f"relay: cannot start {command[0]}: {exc}", file=sys.stderr)
            return 127
    return agent.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
