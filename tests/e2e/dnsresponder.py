"""dnsresponder.py - a tiny DNS server for the e2e tests, run inside a test's
network namespace on 127.0.0.11:53 as Docker's embedded DNS would be (or on
another address, as the upstream server Docker's resolver forwards to):

    p = start_responder("runm-dns-123")   # returns once it is bound
    ...
    log = stop_responder(p)               # "query NAME QTYPE" per question
"""
import select
import subprocess
import sys

ANSWER = "10.9.8.7"

# A resolver in the namespace: A svc.test -> ANSWER, no data for svc.test's
# other types (busybox asks AAAA too), NXDOMAIN for any other name. It says
# "ready" once bound, and logs each question.
RESPONDER = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("%(addr)s", 53))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    tid, flags, qd = struct.unpack(">HHH", q[:6])
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
        i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0] if i + 3 <= len(q) else 0
    question = q[12:i + 5]
    name = ".".join(labels).lower()
    print("query", name, qtype, flush=True)
    rd = flags & 0x0100
    if name == "svc.test" and qtype == 1:
        ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("%(answer)s")
        hdr = struct.pack(">HHHHHH", tid, 0x8480 | rd, 1, 1, 0, 0)
    elif name == "svc.test":
        ans, hdr = b"", struct.pack(">HHHHHH", tid, 0x8480 | rd, 1, 0, 0, 0)
    else:
        ans, hdr = b"", struct.pack(">HHHHHH", tid, 0x8483 | rd, 1, 0, 0, 0)
    s.sendto(hdr + question + ans, peer)
"""


def start_responder(ns, addr="127.0.0.11"):
    """The responder on addr:53 in ns (nsenter, not `ip netns exec`:
    pitfalls.md), once it is bound."""
    script = RESPONDER % {"answer": ANSWER, "addr": addr}
    p = subprocess.Popen(["nsenter", "--net=/run/netns/" + ns, sys.executable, "-c", script],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([p.stdout], [], [], 20)
    line = p.stdout.readline() if ready else ""
    if line.strip() != "ready":
        p.kill()
        _, err = p.communicate(timeout=10)
        raise AssertionError("DNS responder did not start: %r %s" % (line, err))
    return p


def stop_responder(p):
    if p is None:
        return ""
    p.kill()
    out, err = p.communicate(timeout=10)
    return out + err
