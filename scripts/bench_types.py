#!/usr/bin/env python3
"""Streams, HyperLogLogs, bitmaps and geo: redsnap next to redis-server 7 (issue 15).

Usage: scripts/bench_types.py [--bin target/release/redsnap] [--elements 1000000]
                              [--requests 200000] [--rounds 3] [--write BENCHMARKS.md]

Both servers run on free loopback ports with persistence off. For each data type:

* memory per element: the same ELEMENTS elements are loaded into each server from one
  RESP stream (redis-cli --pipe) and the growth of INFO used_memory is divided by
  their number (1M stream entries of one field, 1M geo members, 1M bits set in one
  bitmap, 1M elements added to one HyperLogLog);
* ops/s: redis-benchmark with custom commands (-c 50, -P 1 and -P 16, REQUESTS each),
  redis and redsnap interleaved for ROUNDS rounds, median of each; the commands are
  XADD, XREADGROUP (COUNT 1, new entries) and XACK (of entries in the group's PEL),
  PFADD and PFCOUNT of the 1M-element HLL, SETBIT (bit 100 of 100,000 keys) and
  BITCOUNT of the 1M-bit bitmap,
  GEOSEARCH (10 nearest within 1 km) over the 1M members.

With --write FILE the section "## Data types" of FILE is replaced (or appended).
Targets (issue 15): ops/s ratio >= 1.0, memory per element <= 1.2x Redis's.
"""
import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLIENTS = 50


def log(msg):
    print(f"[bench_types {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *map(str, args)],
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def used_memory(port):
    for line in cli(port, "INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise RuntimeError(f"no used_memory from port {port}")


def wait_ready(port, proc, log_path):
    for _ in range(400):
        if cli(port, "PING") == "PONG":
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.stderr.write(open(log_path).read()[-2000:])
    raise SystemExit(f"server on port {port} did not answer PING")


def resp(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def datasets(n):
    """The same elements for both servers: (name, RESP bytes, key)."""
    rng = random.Random(15)
    xs = bytearray()
    for i in range(1, n + 1):
        xs += resp("XADD", "bench:stream", f"1-{i}", "f", rng.randrange(10**9))
    geo = bytearray()
    for i in range(0, n, 100):
        args = ["GEOADD", "bench:geo"]
        for j in range(i, min(i + 100, n)):
            args += [f"{1 + rng.random():.6f}", f"{2 + rng.random():.6f}", f"m:{j}"]
        geo += resp(*args)
    bits = bytearray()
    for i in range(n):
        bits += resp("SETBIT", "bench:bits", i * 8 + rng.randrange(8), 1)
    hll = bytearray()
    for i in range(0, n, 1000):
        hll += resp("PFADD", "bench:hll", *[f"e:{j}" for j in range(i, min(i + 1000, n))])
    return [("stream entry", bytes(xs), "bench:stream"),
            ("geo member", bytes(geo), "bench:geo"),
            ("bit set", bytes(bits), "bench:bits"),
            ("HLL element", bytes(hll), "bench:hll")]


def pipe(port, data):
    out = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=data,
                         capture_output=True, timeout=600)
    if b"errors: 0" not in out.stdout:
        raise SystemExit(f"loading into port {port} failed: {out.stdout[-300:]!r}")


def bench(port, cmd, pipeline, requests, keyspace):
    args = ["redis-benchmark", "-p", str(port), "-c", str(CLIENTS), "-n", str(requests),
            "-P", str(pipeline), "-r", str(keyspace), "--csv", *cmd]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    rows = [r for r in out.stdout.splitlines() if r and not r.startswith('"test"')]
    if out.returncode != 0 or not rows:
        raise SystemExit(f"redis-benchmark failed: {out.stderr[-300:]}")
    fields = [f.strip('"') for f in rows[-1].split(",")]
    return float(fields[1]), float(fields[6])  # rps, p99 ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/redsnap")
    ap.add_argument("--elements", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write", default="")
    a = ap.parse_args()
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found")
    if not os.access(a.bin, os.X_OK):
        raise SystemExit(f"{a.bin} not found: cargo build --release -p redsnap-cli")
    work = tempfile.mkdtemp(prefix="redsnap-bench-types.")
    procs = []
    try:
        ports = {}
        for kind in ("redis", "redsnap"):
            port = free_port()
            d = os.path.join(work, kind)
            os.makedirs(d)
            lp = os.path.join(d, "log")
            if kind == "redis":
                cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", d, "--daemonize", "no"]
            else:
                cmd = [a.bin, "serve", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", d]
            p = subprocess.Popen(cmd, stdout=open(lp, "w"), stderr=subprocess.STDOUT)
            procs.append(p)
            wait_ready(port, p, lp)
            ports[kind] = port
        n = a.elements
        log(f"generating {n} elements per type")
        mem = {}
        for name, data, key in datasets(n):
            for kind, port in ports.items():
                before = used_memory(port)
                pipe(port, data)
                mem[(name, kind)] = (used_memory(port) - before) / n
            log(f"{name}: {mem[(name, 'redis')]:.1f} B redis, {mem[(name, 'redsnap')]:.1f} B redsnap")
        # A group whose PEL holds every entry, for XACK; a second one for XREADGROUP.
        for port in ports.values():
            cli(port, "XGROUP", "CREATE", "bench:stream", "acks", "0")
            cli(port, "XGROUP", "CREATE", "bench:stream", "reads", "0")
            cli(port, "XREADGROUP", "GROUP", "acks", "c", "COUNT", n, "STREAMS", "bench:stream", ">")
        tests = [
            ("XADD", ["XADD", "bench:xadd", "*", "f", "__rand_int__"], n),
            ("XREADGROUP", ["XREADGROUP", "GROUP", "reads", "c", "COUNT", "1", "STREAMS",
                            "bench:stream", ">"], n),
            ("XACK", ["XACK", "bench:stream", "acks", "1-__rand_int__"], n),
            ("PFADD", ["PFADD", "bench:hll", "e:__rand_int__"], 10 * n),
            ("PFCOUNT", ["PFCOUNT", "bench:hll"], n),
            # redis-benchmark pads __rand_int__ with zeros, which a bit offset may not
            # have: the random part goes into the key.
            ("SETBIT", ["SETBIT", "bench:b:__rand_int__", "100", "1"], 100_000),
            ("BITCOUNT", ["BITCOUNT", "bench:bits"], n),
            ("GEOSEARCH", ["GEOSEARCH", "bench:geo", "FROMLONLAT", "1.5", "2.5", "BYRADIUS", "1",
                           "km", "ASC", "COUNT", "10"], n),
        ]
        res = {}
        load = os.getloadavg()[0]
        for rnd in range(a.rounds):
            for label, cmd, keyspace in tests:
                for depth in (1, 16):
                    for kind, port in ports.items():
                        rps, p99 = bench(port, cmd, depth, a.requests, keyspace)
                        res.setdefault((label, depth, kind), []).append((rps, p99))
            log(f"round {rnd + 1}/{a.rounds} done")
        load_end = os.getloadavg()[0]
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)

    def med(label, depth, kind, i):
        return statistics.median(v[i] for v in res[(label, depth, kind)])

    lines = ["## Data types", "",
             f"Streams, HyperLogLogs, bitmaps and geo (issue 15), `scripts/bench_types.py`: "
             f"redis-server and redsnap side by side, persistence off, {n:,} elements per type; "
             f"redis-benchmark with custom commands, -c {CLIENTS}, {a.requests:,} requests, "
             f"{a.rounds} interleaved rounds, medians. Load average {load:.2f} at the start, "
             f"{load_end:.2f} at the end. Targets: ratio >= 1.0 ops/s, <= 1.2x memory.", "",
             "| command | depth | redis ops/s | redsnap ops/s | ratio | redis p99 ms | redsnap p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, _, _ in tests if a.rounds > 0 else []:
        for depth in (1, 16):
            r, s = med(label, depth, "redis", 0), med(label, depth, "redsnap", 0)
            lines.append(f"| {label} | {depth} | {r:,.0f} | {s:,.0f} | {s / r:.2f} | "
                         f"{med(label, depth, 'redis', 1):.3f} | {med(label, depth, 'redsnap', 1):.3f} |")
    lines += ["", "Memory per element (growth of `used_memory` over the load):", "",
              "| element | redis bytes | redsnap bytes | ratio |", "|---|---:|---:|---:|"]
    for name in ("stream entry", "geo member", "bit set", "HLL element"):
        r, s = mem[(name, "redis")], mem[(name, "redsnap")]
        ratio = f"{s / r:.2f}" if r > 0 else "n/a"
        lines.append(f"| {name} | {r:.2f} | {s:.2f} | {ratio} |")
    section = "\n".join(lines) + "\n"
    print(section)
    if a.write:
        text = open(a.write).read() if os.path.exists(a.write) else ""
        start = text.find("## Data types")
        if start >= 0:
            end = text.find("\n## ", start + 1)
            text = text[:start] + section + ("" if end < 0 else text[end + 1:])
        else:
            text = text.rstrip("\n") + "\n\n" + section
        open(a.write, "w").write(text)


if __name__ == "__main__":
    main()
