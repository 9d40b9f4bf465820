#!/usr/bin/python3
"""test_warm.py - warm start from a VM template (src/vm/template.c): the
first `runm run` of a VM configuration saves a template right after the
agent's hello, later ones restore from it. Each test has its own template
dir (RUNM_TEMPLATE_DIR), so it starts with none. Restored VMs must be made
unique (RNG reseeded, clock set), serve published ports, and a bad template
must turn into a clean cold boot."""
import contextlib
import os
import shutil
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import free_port, main, port_is_free, wait_for  # noqa: E402
from bundle import Bundle, cli_test, runm  # noqa: E402

SAVED = "saved in"
RESTORED = "(restored from a template)"
COLD = "(cold boot)"
PROBE = "head -c 16 /dev/urandom | od -An -x; date +%s; exit 3"


# As in test_net.py (importing it would register its tests here too).
def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def www_bundle(text):
    b = Bundle(["httpd", "-f", "-p", "80", "-h", "/www"])
    os.makedirs(os.path.join(b.path, "rootfs", "www"))
    with open(os.path.join(b.path, "rootfs", "www", "index.html"), "w") as f:
        f.write(text)
    return b


@contextlib.contextmanager
def template_dir():
    """A private template dir, warm start on, info logs (where runm says
    how each VM started) on stderr."""
    d = tempfile.mkdtemp(prefix="runm-tpl-")
    saved = {k: os.environ.get(k) for k in ("RUNM_TEMPLATE_DIR", "RUNM_WARM_START", "RUNM_DEBUG")}
    os.environ.update(RUNM_TEMPLATE_DIR=d, RUNM_WARM_START="1", RUNM_DEBUG="1")
    try:
        yield d
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(d, ignore_errors=True)


def templates(d):
    """Complete templates in d (key dirs), and anything else left there."""
    names = sorted(os.listdir(d))
    full = [n for n in names if os.path.isfile(os.path.join(d, n, "snapshot"))]
    return full, [n for n in names if n not in full]


def probe(b, name):
    """Run PROBE; its random bytes, the guest's clock minus the host's, and stderr."""
    r = runm("run", "--bundle", b.path, name, check=False, timeout=180)
    assert r.returncode == 3, r
    rnd, date = r.stdout.strip().splitlines()[-2:]
    return rnd.strip(), int(date) - time.time(), r.stderr


@cli_test
def second_run_restores_and_is_unique():
    with template_dir() as d, Bundle(["sh", "-c", PROBE]) as b:
        rnd1, skew1, err1 = probe(b, "warm1")
        assert SAVED in err1 and COLD in err1, err1
        full, other = templates(d)
        assert len(full) == 1 and other == [], (full, other)
        rnd2, skew2, err2 = probe(b, "warm2")
        rnd3, skew3, err3 = probe(b, "warm3")
        for e in (err2, err3):
            assert RESTORED in e and SAVED not in e, e
        # Every restored VM starts with the template's RNG state: Ping reseeds it.
        assert len({rnd1, rnd2, rnd3}) == 3, (rnd1, rnd2, rnd3)
        # `date` ran before we read the host clock, within the same second or so.
        for s in (skew1, skew2, skew3):
            assert -10 < s <= 1, (skew1, skew2, skew3)
        assert templates(d) == (full, [])


@cli_test
def published_port_on_restored_vm():
    hp = free_port()
    with template_dir() as d, www_bundle("hello from a restored VM\n") as b:
        # The same VM size and network as the web server's: its template.
        with Bundle(["true"]) as t:
            r = runm("run", "--bundle", t.path, "tpl1", timeout=180)
            assert SAVED in r.stderr, r.stderr
        log = os.path.join(d, "web.log")
        with open(log, "wb") as f, open(os.devnull, "wb") as null:
            runm("run", "--detach", "-p", "127.0.0.1:%d:80" % hp, "--bundle", b.path, "web1", stdout=null,
                 stderr=f, timeout=180)
        with open(log) as f:
            text = f.read()
        assert RESTORED in text, text
        # slirp accepts at once and resets until httpd listens in the guest: retry.
        body = wait_for(lambda: fetch("http://127.0.0.1:%d/" % hp), 60, "http://127.0.0.1:%d/" % hp)
        assert body == "hello from a restored VM\n", body
        runm("delete", "--force", "web1")
    wait_for(lambda: port_is_free(hp), 10, "port %d free after delete" % hp)


@cli_test
def corrupt_template_falls_back_to_cold_boot():
    with template_dir() as d, Bundle(["sh", "-c", "echo out; exit 5"]) as b:
        r = runm("run", "--bundle", b.path, "bad1", check=False, timeout=180)
        assert r.returncode == 5 and r.stdout == "out\n", r
        (key,), _ = templates(d)
        snap = os.path.join(d, key, "snapshot")
        size = os.path.getsize(snap)
        with open(snap, "r+b") as f:  # same size, garbage from the middle on
            f.seek(size // 2)
            f.write(os.urandom(size - size // 2))
        t0 = time.monotonic()
        r = runm("run", "--bundle", b.path, "bad2", check=False, timeout=180)
        took = time.monotonic() - t0
        assert r.returncode == 5 and r.stdout == "out\n", r
        assert "restore from template" in r.stderr and "booting cold" in r.stderr and COLD in r.stderr, r.stderr
        # The bad template is gone, nothing half-removed is left; cli_test checks VMMs and mounts.
        assert templates(d) == ([], []), templates(d)
        # The next start makes a fresh one.
        r = runm("run", "--bundle", b.path, "bad3", check=False, timeout=180)
        assert r.returncode == 5 and SAVED in r.stderr, r
        print("fallback run took %.1f s" % took)


@cli_test
def warm_start_off_saves_nothing():
    with template_dir() as d, Bundle(["true"]) as b:
        os.environ["RUNM_WARM_START"] = "0"
        r = runm("run", "--bundle", b.path, "off1", timeout=180)
        assert COLD in r.stderr and SAVED not in r.stderr, r.stderr
        assert os.listdir(d) == [], os.listdir(d)


if __name__ == "__main__":
    main()
