#!/usr/bin/python3
"""demo.py - what `make demo` shows: a command run inside its own VM, first
with the runm CLI on an OCI bundle, then through a private containerd with
`ctr run --runtime io.containerd.runm.v1` (a private containerd: its root,
state and socket live under build/demo and are removed after)."""
import os
import platform
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
from bundle import Bundle, cli_cleanup, runm  # noqa: E402
import lib  # noqa: E402

CMD = ["sh", "-c", "echo \"hello from $(hostname), kernel $(uname -r)\"; cat /proc/cpuinfo | grep -m1 'model name'"]


def say(s):
    print("\033[1m==> %s\033[0m" % s, flush=True)


def main():
    say("host kernel: %s" % platform.release())
    say("runm check: can runm run containers here, and with what")
    r = runm("check", check=False)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        return r.returncode
    say("runm run: a busybox bundle in its own micro-VM")
    try:
        with Bundle(CMD) as b:
            r = runm("run", "--bundle", b.path, "demo", check=False)
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr)
            if r.returncode != 0:
                return r.returncode
    finally:
        cli_cleanup()

    if not os.path.exists(os.path.join(lib.BIN, "containerd-shim-runm-v1")):
        say("containerd shim not built: skipping the ctr part")
        return 0
    say("ctr run --runtime %s: the same through a private containerd" % lib.RUNM)
    # containerd's root and state under build/demo, removed after.
    cd = lib.Containerd(debug=False, base=os.path.join(lib.BUILD, "demo"))
    try:
        cd.start()
        img = lib.import_busybox(cd)
        print("$ ctr run --rm --runtime %s %s demo %s" % (lib.RUNM, img, " ".join(CMD)), flush=True)
        r = cd.ctr("run", "--rm", "--runtime", lib.RUNM, img, "demo", *CMD, check=False, timeout=180)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        return r.returncode
    finally:
        cd.cleanup_containers()
        lib.kill_leftovers(cd)
        cd.stop(check=False)
        cd.remove()


if __name__ == "__main__":
    sys.exit(main())
