#!/usr/bin/python3
"""test_soak.py - a short soak (tests/soak.py, `make soak` runs the long
one): 10 containers one after another, then 4 at once, then nothing of
them may be left and containerd must still answer."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F401,F403

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import soak  # noqa: E402


@test(timeout=300, private_state_root=True)
def short_soak(cd):
    img = import_busybox(cd)
    f = soak.soak(cd, img, 10, 4)
    for line in soak.report(f).splitlines():
        log(line)


if __name__ == "__main__":
    main()
