#!/usr/bin/python3
"""test_buildah.py - Buildah 1.28 (`buildah bud --runtime runm`) and `podman
build` with runm: every RUN step runs in a runm VM (it prints the guest
kernel), a multi-stage Containerfile builds, the RUN step's network is the
namespace buildah configured through the monitor's /proc/<pid>/ns/net after
create (mirrored at start), and a failing RUN reports its exit status.
Buildah's defaults for root are used (isolation oci, a private netns on
netavark's default network). See podman.py for the environment and leak checks."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from podman import IMAGE, RUNM_BIN, guest_kernel, host_kernel, pmain, ptest  # noqa: E402

MULTISTAGE = """FROM {img} AS build
RUN echo "stage1-kernel=$(uname -r)" && echo built > /artifact
FROM {img}
COPY --from=build /artifact /artifact
RUN echo "stage2-kernel=$(uname -r)" && echo "artifact=$(cat /artifact)" && \\
    echo "links=$(ip -o link | wc -l)" && echo "addr=$(ip -4 -o addr show eth0 | awk '{{print $4}}')"
"""


def context(pm, name, text):
    d = os.path.join(pm.work, name)
    os.makedirs(d)
    with open(os.path.join(d, "Containerfile"), "w") as f:
        f.write(text.format(img=IMAGE))
    return d


def values(out):
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l and " " not in l.split("=", 1)[0])


@ptest
def buildah_bud_multistage(pm):
    ctx = context(pm, "ms", MULTISTAGE)
    r = pm.buildah("bud", "--runtime", RUNM_BIN, "-t", "localhost/ms:1", ctx)
    v = values(r.stdout)
    assert v.get("stage1-kernel") == guest_kernel() != host_kernel(), r.stdout
    assert v.get("stage2-kernel") == guest_kernel(), r.stdout
    assert v.get("artifact") == "built", r.stdout
    # lo and eth0: buildah's netns (configured after create) is the VM's network.
    assert v.get("links") == "2" and v.get("addr", "").startswith("10.214.0."), r.stdout
    assert "localhost/ms" in pm.podman("images", "--format", "{{.Repository}}").stdout
    pm.podman("rmi", "localhost/ms:1")


@ptest
def podman_build_uses_runm(pm):
    ctx = context(pm, "pb", "FROM {img}\nRUN echo \"kernel=$(uname -r)\" > /k && cat /k\n")
    r = pm.podman("build", "-t", "localhost/pb:1", ctx)
    assert values(r.stdout).get("kernel") == guest_kernel(), r.stdout
    pm.podman("rmi", "localhost/pb:1")


@ptest
def failing_run_reports_status(pm):
    ctx = context(pm, "fail", "FROM {img}\nRUN exit 7\n")
    for cmd in (lambda: pm.buildah("bud", "--runtime", RUNM_BIN, ctx, check=False),
                lambda: pm.podman("build", ctx, check=False)):
        r = cmd()
        assert r.returncode == 7 and "exit status 7" in r.stderr, r


if __name__ == "__main__":
    pmain()
