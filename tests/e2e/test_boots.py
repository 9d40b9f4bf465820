#!/usr/bin/python3
"""test_boots.py - boots are reliable under TCG: 50 containers in a row, each
in a fresh VM, every one within the boot deadline (a hang fails with the
guest console's tail, from runm's own error). RUNM_BOOTS overrides the count."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import main, test, wait_for  # noqa: E402
from bundle import Bundle, cli_cleanup, cli_leaks, runm  # noqa: E402

BOOTS = int(os.environ.get("RUNM_BOOTS", "50"))


@test(timeout=BOOTS * 60 + 60)
def fifty_boots_no_hang():
    times = []
    try:
        with Bundle(["echo", "booted"]) as b:
            for i in range(BOOTS):
                t0 = time.monotonic()
                # runm's boot deadline (RUNM_BOOT_TIMEOUT_MS, 60 s) ends a hung boot with
                # the console tail in stderr; the subprocess timeout is only a backstop.
                r = runm("run", "--bundle", b.path, "boot%d" % i, check=False, timeout=120)
                times.append(time.monotonic() - t0)
                assert r.returncode == 0 and r.stdout == "booted\n", "boot %d failed: %s" % (i, r)
        wait_for(lambda: not cli_leaks(), 10, "no leftovers")
    finally:
        cli_cleanup()
    times.sort()
    print("  %d boots: median %.0f ms, max %.0f ms" % (len(times), times[len(times) // 2] * 1000,
                                                     times[-1] * 1000), flush=True)


if __name__ == "__main__":
    main()
