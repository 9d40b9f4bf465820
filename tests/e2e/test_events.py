#!/usr/bin/python3
"""test_events.py - src/events/publisher against a real containerd: an event
forwarded on <address>.ttrpc shows up in `ctr events`, and a peer answering
garbage makes the publisher give up cleanly instead of crashing.

Uses build/tests/tools/publish_event (PUBLISH_EVENT overrides the path, e.g.
to run an ASan build of the tool)."""
import os
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F401,F403

PUBLISH = os.environ.get("PUBLISH_EVENT", os.path.join(BUILD, "tests", "tools", "publish_event"))
CID = "runm-evt-test"
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")


class Lines:
    """Collect a pipe's lines on a thread, so the test can wait on them."""

    def __init__(self, pipe):
        self.lines = []
        self._lock = threading.Lock()
        self._t = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._t.start()

    def _read(self, pipe):
        for line in iter(pipe.readline, ""):
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def find(self, pred):
        with self._lock:
            return next((ln for ln in self.lines if pred(ln)), None)

    def text(self):
        with self._lock:
            return "\n".join(self.lines)


@test(timeout=90)
def exit_event_reaches_ctr_events(cd):
    e = cd.env()
    # The same command line cd.ctr() builds, but long-running.
    ev = subprocess.Popen(["ctr", "--address", cd.address, "--namespace", cd.namespace, "events"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=e)
    try:
        out, err = Lines(ev.stdout), Lines(ev.stderr)
        # ctr subscribes asynchronously: publish until an event shows up, so
        # one sent before the subscription exists does not fail the test.
        def seen():
            if ev.poll() is not None:
                raise AssertionError("ctr events exited (%s): %s" % (ev.returncode, err.text()))
            line = out.find(lambda ln: "/tasks/exit" in ln and CID in ln)
            if line:
                return line
            r = run([PUBLISH, cd.address + ".ttrpc", cd.namespace, "/tasks/exit"], timeout=30,
                    check=False)
            assert r.returncode == 0, "publish_event failed: %s" % (r.stderr,)
            return out.find(lambda ln: "/tasks/exit" in ln and CID in ln)

        line = wait_for(seen, 20, "/tasks/exit for %s in `ctr events`" % CID, interval=0.2)
        log("ctr events:", line)
        # ctr printed it only because it could unmarshal the Any: the type_url is right.
        assert cd.namespace in line, line
        assert '"exit_status":7' in line and '"pid":42' in line, line
        assert not err.find(lambda ln: "cannot unmarshal" in ln), err.text()
    finally:
        ev.kill()
        ev.wait(10)


def garbage_server(path, reply):
    """Listen on path; answer whatever each connection sends with `reply`,
    then close it. Returns (socket, thread, counter dict)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    stats = {"conns": 0}

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return  # closed by the test
            with c:
                stats["conns"] += 1
                c.settimeout(5)
                try:
                    c.recv(65536)
                    c.sendall(reply)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t, stats


@test(timeout=60)
def publisher_survives_garbage():
    cases = {
        # An impossible frame: length far above the 4 MiB cap, unknown type.
        "oversized": b"\xff" * 64,
        # A well-formed response frame on stream 1 whose payload is not a
        # ttrpc.Response (a truncated varint field).
        "bad-payload": b"\x00\x00\x00\x03\x00\x00\x00\x01\x02\x00" + b"\x0a\xff\xff",
        # Half a header, then hang up.
        "short": b"\x00\x00\x00",
    }
    d = tempfile.mkdtemp(prefix="evt-", dir="/tmp")
    try:
        for name, reply in cases.items():
            path = os.path.join(d, name + ".sock")
            srv, t, stats = garbage_server(path, reply)
            try:
                r = run([PUBLISH, path, "runm-test", "/tasks/exit"], timeout=30, check=False)
            finally:
                srv.close()
            report = r.stderr
            for mark in SANITIZER_MARKS:
                assert mark not in report, "%s: sanitizer report:\n%s" % (name, report)
            assert r.returncode == 1, "%s: status %s (want 1):\n%s" % (name, r.returncode, report)
            assert "publish_event: event /tasks/exit not acknowledged" in report, report
            assert stats["conns"] >= 2, "%s: publisher did not reconnect (%d conns)" % (
                name, stats["conns"])
            log("%s: %d connections, %s" % (name, stats["conns"], report.strip().splitlines()[-1]))
    finally:
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
