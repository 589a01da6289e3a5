#!/usr/bin/env python3
"""What an idle established TCP socket costs the Linux kernel, for comparison
with tapir's bytes per idle connection (BENCHMARKS.md, "Many connections").

    sudo python3 benches/scripts/kernel_socket_memory.py [N]

Inside a namespace it creates (tapir-kmem, removed at the end), with the
test address 10.77.0.1 on its loopback, opens N connections (2N sockets)
and prints the growth of the kernel's slab memory per socket and the slab
caches that grew by about one object per socket. Socket buffers are not
allocated while a socket is idle, so this is the resting cost.
"""
import os
import resource
import socket
import subprocess
import sys
import time

NS = "tapir-kmem"
ADDR = "10.77.0.1"


def slab_bytes():
    for line in open("/proc/meminfo"):
        if line.startswith("Slab:"):
            return int(line.split()[1]) * 1024
    return 0


def slab_objects():
    out = {}
    for line in open("/proc/slabinfo").readlines()[2:]:
        f = line.split()
        out[f[0]] = (int(f[1]), int(f[3]))
    return out


def measure(n):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = socket.socket()
    listener.bind((ADDR, 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    time.sleep(0.5)
    s0, o0 = slab_bytes(), slab_objects()
    held = []
    for i in range(n):
        c = socket.socket()
        c.connect((ADDR, port))
        s, _ = listener.accept()
        held += [c, s]
        if i % 100 == 0:  # a byte each way on some, as an idle service would have seen
            c.send(b"x")
            s.recv(1)
    time.sleep(1)
    s1, o1 = slab_bytes(), slab_objects()
    print(f"{n} connections ({2 * n} sockets): slab grew {(s1 - s0) / (2 * n):.0f} bytes per socket")
    for name, (count, size) in sorted(o1.items()):
        grew = count - o0.get(name, (0, size))[0]
        if grew > n / 2:
            print(f"  {name}: +{grew} objects of {size} bytes = {grew * size / (2 * n):.0f} bytes per socket")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "--inside" else 5000
    if len(sys.argv) > 2 and sys.argv[1] == "--inside":
        return measure(int(sys.argv[2]))
    if os.geteuid() != 0:
        sys.exit("needs root (a network namespace)")
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    try:
        subprocess.run(["ip", "netns", "add", NS], check=True)
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", NS, "addr", "add", f"{ADDR}/32", "dev", "lo"], check=True)
        subprocess.run(["ip", "netns", "exec", NS, sys.executable, __file__, "--inside", str(n)], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


if __name__ == "__main__":
    main()
