#!/usr/bin/env python3
"""Memory of redsnap serve and redis-server side by side under hostile clients
(issues 5 and 19): resident memory (VmRSS from /proc) per connection for idle
connections, connections that sent only the header of a 512 MB bulk, connections
that sent part of such a bulk, and clients that never read their replies; then
the pub/sub subscriber that never reads and 10,000 connection attempts against
maxclients (redsnap only). Each scenario runs on a freshly started server.
Replaces the "## Hostile clients" section of BENCHMARKS.md (unless --print-only).

Usage: scripts/bench_hostile.py [--bin PATH] [--redis PATH|none] [--conns N] [--print-only]
  --bin     the redsnap binary (default target/release/redsnap)
  --redis   the redis-server binary to compare with (default redis-server; none: skip)
  --conns   connections per scenario (default 200)
"""
import argparse, os, re, resource, socket, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(root, "target", "release", "redsnap"))
ap.add_argument("--redis", default="redis-server")
ap.add_argument("--conns", type=int, default=200)
ap.add_argument("--print-only", action="store_true")
opts = ap.parse_args()
N = opts.conns
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if hard < 2 * N + 100:
    sys.exit(f"bench_hostile: {N} connections need more file descriptors (ulimit -n {hard})")

HEADER = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870000\r\n"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


class Server:
    def __init__(self, kind, extra=()):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp()
        if kind == "redis":
            argv = [opts.redis, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.tmp, "--maxclients", "10000"]
        else:
            argv = [opts.bin, "serve", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.tmp]
        self.proc = subprocess.Popen(argv + list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if self.cmd(b"PING") == b"+PONG\r\n":
                    break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.3)

    def kb(self, field="VmRSS:"):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(field):
                return int(line.split()[1])
        return 0

    def connect(self):
        c = socket.create_connection(("127.0.0.1", self.port)); c.settimeout(30); return c

    def cmd(self, *args):
        c = self.connect()
        c.sendall(b"".join([b"*%d\r\n" % len(args)] + [b"$%d\r\n%s\r\n" % (len(a), a) for a in args]))
        r = c.recv(1 << 16); c.close(); return r

    def stop(self):
        self.proc.terminate(); self.proc.wait(10)


def idle(srv):
    conns = []
    for _ in range(N):
        c = srv.connect(); c.sendall(b"PING\r\n"); c.recv(16); conns.append(c)
    return conns, 0


def header_only(srv):
    conns = []
    for _ in range(N):
        c = srv.connect(); c.sendall(HEADER); conns.append(c)
    return conns, 0


def partly_sent(size):
    def run(srv):
        conns = []
        chunk = b"x" * size
        for _ in range(N):
            c = srv.connect(); c.sendall(HEADER); conns.append(c)
        for c in conns:
            c.sendall(chunk)
        return conns, size
    return run


def never_reading(srv):
    # Each client asks for a 1 MB value 8 times and never reads the replies.
    srv.cmd(b"SET", b"big", b"v" * (1 << 20))
    conns = []
    for _ in range(N):
        c = srv.connect(); c.setblocking(False)
        try:
            c.send(b"GET big\r\n" * 8)
        except BlockingIOError:
            pass
        conns.append(c)
    return conns, 0


SCENARIOS = [
    ("idle connections", idle),
    ("header of a 512 MB bulk only", header_only),
    ("512 MB bulk announced, 60 KB sent", partly_sent(60 * 1024)),
    ("512 MB bulk announced, 200 KB sent", partly_sent(200 * 1024)),
    ("never reading, 8 pipelined GETs of a 1 MB value", never_reading),
]


def per_conn(kind, run):
    srv = Server(kind)
    try:
        base = srv.kb()
        conns, sent = run(srv)
        time.sleep(1.5)
        grown = srv.kb() - base
        alive = srv.cmd(b"PING") == b"+PONG\r\n"
        for c in conns:
            c.close()
        return grown / N, sent / 1024, alive
    finally:
        srv.stop()


kinds = ["redsnap"] + ([] if opts.redis == "none" else ["redis"])
rows = []
for name, run in SCENARIOS:
    res = {k: per_conn(k, run) for k in kinds}
    rows.append((name, res))
    print(name, {k: f"{v[0]:.1f} KiB/conn" for k, v in res.items()}, file=sys.stderr)

# redsnap alone: the pub/sub subscriber that never reads, and connection floods.
srv = Server("redsnap", ["--maxclients", "200", "--client-output-buffer-limit", "pubsub 32mb 8mb 60"])
try:
    extra = [("idle server", srv.kb())]
    sub = srv.connect(); sub.sendall(b"SUBSCRIBE flood\r\n"); time.sleep(0.2)
    pub = srv.connect(); payload = b"x" * 65536
    for _ in range(2000):
        pub.sendall(b"*3\r\n$7\r\nPUBLISH\r\n$5\r\nflood\r\n$65536\r\n" + payload + b"\r\n")
        if pub.recv(64) == b":0\r\n":
            break
    extra.append(("subscriber that never reads, 64 KB messages until disconnected", srv.kb()))
    for _ in range(10000):
        try:
            c = srv.connect(); c.close()
        except OSError:
            pass
    extra.append(("10,000 connection attempts (maxclients 200)", srv.kb()))
    # The last attempts' slots are released as their connections end.
    alive = False
    for _ in range(100):
        try:
            alive = srv.cmd(b"PING") == b"+PONG\r\n"
        except OSError:
            pass
        if alive:
            break
        time.sleep(0.1)
    peak = srv.kb("VmHWM:")
finally:
    srv.stop()

build = "release" if "/release/" in opts.bin else "debug" if "/debug/" in opts.bin else os.path.basename(opts.bin)
section = ["## Hostile clients", "",
           f"`scripts/bench_hostile.py --conns {N}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
           f"redsnap {build} build): growth of the server's resident memory (VmRSS) per connection, "
           "each scenario on a freshly started server, against redis-server 7.0.15 side by side "
           "(tests in crates/server/tests/hostile_memory.rs, hardening.rs and bad_input.rs assert "
           "the bounds in debug builds).", ""]
head = "| scenario | sent per connection | " + " | ".join(f"{k} RSS per connection" for k in kinds) + " |"
section += [head, "|---|---:|" + "---:|" * len(kinds)]
for name, res in rows:
    sent = next(iter(res.values()))[1]
    section.append(f"| {name} | {sent:.0f} KiB | " + " | ".join(f"{res[k][0]:.1f} KiB" for k in kinds) + " |")
section += ["", "redsnap alone, RSS after each step:", "", "| scenario | RSS after |", "|---|---:|"]
section += [f"| {name} | {v / 1024:.1f} MiB |" for name, v in extra]
section += ["", f"Peak RSS (VmHWM) over that run: **{peak / 1024:.1f} MiB**; server still answering PING: {alive}.", ""]
text = "\n".join(section)
if not opts.print_only:
    path = os.path.join(root, "BENCHMARKS.md")
    doc = open(path).read()
    if "## Hostile clients" in doc:
        doc = re.sub(r"## Hostile clients\n.*?(?=\n## |\Z)", text, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + text
    open(path, "w").write(doc)
print(text)
