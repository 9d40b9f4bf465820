#!/usr/bin/python3
"""test_podman_compose.py - Debian's podman-compose 1.0.3 with runm (through
engine.runtime = "runm" in containers.conf): a two-service stack on the
project's network, the client reaching the web service by name through
aardvark-dns, and `down` leaving no VM. See podman.py for the environment."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from podman import IMAGE, guest_kernel, pmain, ptest  # noqa: E402

COMPOSE = """version: "3"
services:
  web:
    image: {img}
    command: ["sh", "-c", "echo from-web > /tmp/index.html; trap 'exit 0' TERM; httpd -p 80 -h /tmp; while true; do sleep 1; done"]
  client:
    image: {img}
    depends_on: [web]
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"""


@ptest
def two_services_by_name(pm):
    d = os.path.join(pm.work, "proj")
    os.makedirs(d)
    with open(os.path.join(d, "docker-compose.yml"), "w") as f:
        f.write(COMPOSE.format(img=IMAGE))
    try:
        pm.compose("rt", d, "up", "-d")
        names = set(pm.podman("ps", "--format", "{{.Names}}").stdout.split())
        assert names == {"rt_web_1", "rt_client_1"}, names
        # busybox-static's wget cannot resolve (no NSS): nslookup asks aardvark.
        r = pm.podman("exec", "rt_client_1", "sh", "-c",
                      "uname -r; a=$(nslookup web | awk '/^Address/ && !/:53/ {print $NF}' | tail -1);"
                      " echo web=$a; timeout 15 wget -qO- http://$a/index.html")
        lines = r.stdout.splitlines()
        assert lines[0] == guest_kernel(), r.stdout
        assert lines[1] == "web=" + pm.inspect("rt_web_1", "{{(index .NetworkSettings.Networks \"rt_default\").IPAddress}}"), r.stdout
        assert lines[-1] == "from-web", r.stdout
    finally:
        pm.compose("rt", d, "down", check=False)
    assert pm.podman("ps", "-aq").stdout.strip() == ""
    # podman-compose 1.0.3's down leaves the project network behind.
    pm.podman("network", "rm", "rt_default", check=False)


if __name__ == "__main__":
    pmain()
