#!/usr/bin/env python3
"""Turn scripts/bench.sh's raw results into BENCHMARKS.md and an SVG bar chart.

Inputs (written by bench.sh):
  --csv-dir DIR   redis-benchmark --csv outputs named <server>-<mode>-P<pipeline>-r<round>.csv
                  (mode: the persistence mode, "off" or "everysec"; a name without
                  one, <server>-P<pipeline>-r<round>.csv, is mode "off")
  --memory FILE   key=value lines: <server>.rss_before_kb, .rss_after_kb,
                  .used_memory_before, .used_memory_after, .dbsize, .load_seconds,
                  .rss_overwrite_kb, .used_memory_overwrite, .rss_bgsave_peak_kb
  --meta FILE     key=value lines: date, commit, nproc, cpu, ... (failure= may repeat)
Outputs: --out BENCHMARKS.md, --svg chart (linked from the markdown as --svg-link).
"""

import argparse
import csv
import glob
import os
import re
import statistics
from collections import defaultdict
from xml.sax.saxutils import escape

SERVERS = ("redis", "redsnap")
MODE_TEXT = {
    "off": "persistence off",
    "everysec": "append log, appendfsync everysec",
}


def read_kv(path):
    out = defaultdict(list)
    if path and os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    k, v = line.split("=", 1)
                    out[k].append(v)
    return out


def first(kv, key, default=""):
    v = kv.get(key)
    return v[0] if v else default


def test_name(raw):
    """'LRANGE_100 (first 100 elements)' -> 'LRANGE_100'; helper rows -> None."""
    if "needed to benchmark" in raw:
        return None
    return raw.split(" ")[0]


def read_csvs(csv_dir):
    """{(mode, pipeline, test, server): [(rps, p99), ...]} and the test order."""
    data = defaultdict(list)
    order = []
    pat = re.compile(r"^(redis|redsnap)(?:-([a-z]+))?-P(\d+)-r(\d+)\.csv$")
    for path in sorted(glob.glob(os.path.join(csv_dir, "*.csv"))):
        m = pat.match(os.path.basename(path))
        if not m:
            continue
        server, mode, pipeline = m.group(1), m.group(2) or "off", int(m.group(3))
        with open(path, encoding="utf-8", errors="replace") as f:
            for row in csv.DictReader(f):
                name = test_name(row.get("test") or "")
                if not name:
                    continue
                try:
                    rps = float(row["rps"])
                    p99 = float(row.get("p99_latency_ms") or "nan")
                except (KeyError, ValueError):
                    continue
                data[(mode, pipeline, name, server)].append((rps, p99))
                if name not in order:
                    order.append(name)
    return data, order


def median(values):
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else None


def fmt_rps(v):
    return "n/a" if v is None else "{:,.0f}".format(v)


def fmt_ms(v):
    return "n/a" if v is None else "{:.3f}".format(v)


def fmt_ratio(v):
    return "n/a" if v is None else "{:.2f}".format(v)


def summarize(data, order, series):
    """[((mode, pipeline), test, redis_rps, redsnap_rps, ratio, redis_p99, redsnap_p99, n_runs)]"""
    rows = []
    for (mode, p) in series:
        for t in order:
            r = data.get((mode, p, t, "redis"), [])
            s = data.get((mode, p, t, "redsnap"), [])
            if not r and not s:
                continue
            r_rps, s_rps = median([x[0] for x in r]), median([x[0] for x in s])
            r_p99, s_p99 = median([x[1] for x in r]), median([x[1] for x in s])
            ratio = s_rps / r_rps if r_rps and s_rps is not None else None
            rows.append(((mode, p), t, r_rps, s_rps, ratio, r_p99, s_p99, min(len(r), len(s))))
    return rows


def series_label(key, modes):
    mode, p = key
    return "-P %d" % p if len(modes) == 1 else "%s -P %d" % (mode, p)


def svg_chart(rows, series, modes=("off",)):
    """Horizontal grouped bars of redsnap/redis rps per test, one bar per (mode, pipeline)."""
    tests = []
    for row in rows:
        if row[1] not in tests:
            tests.append(row[1])
    ratios = {(row[0], row[1]): row[4] for row in rows}
    colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"]
    bar_h, gap, label_w, plot_w, top, bottom_pad = 14, 10, 110, 520, 50, 50
    legend_w = 70 if len(modes) == 1 else 120
    group_h = bar_h * len(series) + gap
    height = top + group_h * max(len(tests), 1) + bottom_pad
    width = label_w + plot_w + 70
    known = [v for v in ratios.values() if v is not None]
    max_ratio = max([1.25] + [v * 1.1 for v in known])
    max_ratio = float("{:.1f}".format(max_ratio + 0.05))

    def x(v):
        return label_w + plot_w * (v / max_ratio)

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (width, height, width, height),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="%d" y="20" font-size="14" font-weight="bold">redsnap throughput relative to '
        'redis-server (rps ratio, higher is better)</text>' % label_w,
    ]
    # legend
    lx = label_w
    for i, p in enumerate(series):
        out.append('<rect x="%d" y="30" width="12" height="12" fill="%s"/>' % (lx, colors[i % len(colors)]))
        out.append('<text x="%d" y="40">%s</text>' % (lx + 16, escape(series_label(p, modes))))
        lx += legend_w
    # grid lines every 0.25
    step = 0.25 if max_ratio <= 2.5 else 0.5
    v = 0.0
    while v <= max_ratio + 1e-9:
        gx = x(v)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e0e0e0"/>'
                   % (gx, top - 5, gx, height - bottom_pad + 5))
        tick = ("%.2f" % v).rstrip("0").rstrip(".")
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>'
                   % (gx, height - bottom_pad + 20, tick))
        v += step
    for ti, t in enumerate(tests):
        gy = top + ti * group_h
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                   % (label_w - 8, gy + bar_h * len(series) / 2 + 4, escape(t)))
        for pi, p in enumerate(series):
            r = ratios.get((p, t))
            y = gy + pi * bar_h
            if r is None:
                out.append('<text x="%d" y="%d" fill="#999">n/a</text>' % (label_w + 4, y + bar_h - 3))
                continue
            out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>'
                       % (label_w, y, x(r) - label_w, bar_h - 2, colors[pi % len(colors)]))
            out.append('<text x="%.1f" y="%d" font-size="10">%.2f</text>' % (x(r) + 3, y + bar_h - 4, r))
    # the parity line
    out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="1.5" '
               'stroke-dasharray="4,3"/>' % (x(1.0), top - 8, x(1.0), height - bottom_pad + 5))
    out.append('<text x="%.1f" y="%d" text-anchor="middle" font-weight="bold">1.0 = redis</text>'
               % (x(1.0), height - bottom_pad + 36))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def mem_section(mem):
    def num(key):
        try:
            return float(first(mem, key))
        except ValueError:
            return None

    lines = []
    rows = []
    for s in SERVERS:
        rows.append((
            s,
            num(s + ".dbsize"),
            num(s + ".rss_before_kb"),
            num(s + ".rss_after_kb"),
            num(s + ".used_memory_after"),
            num(s + ".load_seconds"),
        ))
    lines.append("| server | keys (DBSIZE) | RSS empty | RSS loaded | RSS per key | used_memory (INFO) | load time |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")

    def mib(kb):
        return "n/a" if kb is None else "{:.1f} MiB".format(kb / 1024)

    per_key = {}
    for s, keys, before, after, used, secs in rows:
        pk = None
        if keys and before is not None and after is not None:
            pk = (after - before) * 1024 / keys
        per_key[s] = pk
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            s,
            "n/a" if keys is None else "{:,.0f}".format(keys),
            mib(before),
            mib(after),
            "n/a" if pk is None else "{:.0f} B".format(pk),
            "n/a" if used is None else "{:.1f} MiB".format(used / 1048576),
            "n/a" if secs is None else "{:.1f} s".format(secs),
        ))
    r_after, s_after = rows[0][3], rows[1][3]
    r_used, s_used = rows[0][4], rows[1][4]
    lines.append("")
    # The three moments of issue 16, when the run measured them.
    moments = [
        ("after loading", ".rss_after_kb"),
        ("after BGSAVE, then overwriting every key", ".rss_overwrite_kb"),
        ("peak during a BGSAVE under writes (Pss of the server and its fork)", ".rss_bgsave_peak_kb"),
    ]
    if any(num(s + ".rss_overwrite_kb") is not None for s in SERVERS):
        lines.append("| moment | " + " | ".join(SERVERS) + " | ratio redsnap/redis |")
        lines.append("|---|" + "---:|" * (len(SERVERS) + 1))
        for label, suffix in moments:
            vals = [num(s + suffix) for s in SERVERS]
            ratio = "n/a"
            if vals[0] and vals[1]:
                ratio = "**{:.2f}**".format(vals[1] / vals[0])
            lines.append("| %s | %s | %s |" % (label, " | ".join(mib(v) for v in vals), ratio))
        lines.append("")
    summary = []
    if r_after and s_after:
        summary.append("**RSS ratio redsnap/redis (loaded): {:.2f}**".format(s_after / r_after))
    if per_key.get("redis") and per_key.get("redsnap"):
        summary.append("per-key RSS growth ratio: {:.2f}".format(per_key["redsnap"] / per_key["redis"]))
    if r_used and s_used:
        summary.append("INFO used_memory ratio: {:.2f}".format(s_used / r_used))
    if summary:
        lines.append("; ".join(summary) + ".")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv-dir", required=True)
    ap.add_argument("--memory", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--svg", required=True)
    ap.add_argument("--svg-link", default="docs/bench-ratios.svg")
    args = ap.parse_args()

    meta = read_kv(args.meta)
    mem = read_kv(args.memory)
    pipelines = [int(p) for p in first(meta, "pipelines", "1 16").split()]
    data, order = read_csvs(args.csv_dir)
    modes = [m for m in first(meta, "modes", "off").split(",") if m]
    # Modes found in the csv files but not in the meta (an older run) come last.
    for (m, _p, _t, _s) in data:
        if m not in modes:
            modes.append(m)
    series = [(m, p) for m in modes for p in pipelines]
    rows = summarize(data, order, series)

    with open(args.svg, "w", encoding="utf-8") as f:
        f.write(svg_chart(rows, series, modes))

    md = []
    md.append("# Benchmarks: redsnap vs redis-server\n")
    md.append("Generated by `scripts/bench.sh` on %s at commit `%s`. Re-run it to refresh this file.\n"
              % (first(meta, "date"), first(meta, "commit")))
    md.append("## Machine\n")
    md.append("| | |\n|---|---|")
    md.append("| CPU | %s |" % first(meta, "cpu"))
    md.append("| cores (nproc) | %s |" % first(meta, "nproc"))
    md.append("| memory | %s |" % first(meta, "mem_total"))
    md.append("| load average (1/5/15 min) | %s |" % first(meta, "loadavg"))
    md.append("| kernel | %s |" % first(meta, "kernel"))
    md.append("| redis-server | %s |" % first(meta, "redis_version"))
    md.append("| redis-benchmark | %s |" % first(meta, "benchmark_version"))
    md.append("| redsnap binary | `%s` |" % first(meta, "redsnap_bin"))
    md.append("")
    md.append("Client and servers share the machine: redis-benchmark, redis-server and redsnap compete "
              "for the same %s cores (and with whatever else runs there: see the load average), so absolute "
              "numbers are low and noisy; the interleaved rounds keep the ratios comparable. "
              "Both servers run on loopback, in each persistence mode measured: persistence off "
              "(redis `--save '' --appendonly no`, redsnap `--appendonly no --save \"\"`) and "
              "appendfsync everysec (redis `--save '' --appendonly yes --appendfsync everysec`, redsnap "
              "`--appendonly yes --appendfsync everysec --save \"\" --snapshot-interval 0`), each "
              "pair started fresh with empty data directories.\n" % first(meta, "nproc"))
    md.append("## Throughput\n")
    md.append("`redis-benchmark -c %s -r %s -n %s -P <depth> -t <tests> --csv`, run against the two servers "
              "interleaved (redis, redsnap, redis, redsnap, ...), %s round(s), `FLUSHALL` before each run; "
              "the tables show the median of the rounds. Ratio = redsnap rps / redis rps (higher is better); "
              "p99 in milliseconds (lower is better).\n"
              % (first(meta, "clients"), first(meta, "keyspace"), first(meta, "requests"), first(meta, "rounds")))
    md.append("With `-P 1` every request is a loopback round trip and redis-benchmark needs about as much "
              "CPU as the server, so both servers land close to the client's limit; `-P 16` (16 requests "
              "in flight per connection) shows more of each server's own per-command cost.\n")
    if first(meta, "mode_rounds"):
        md.append("Rounds per persistence mode: %s.\n" % first(meta, "mode_rounds").replace(":", ": ").replace(",", ", "))
    if first(meta, "rounds_planned") and first(meta, "rounds_planned") != first(meta, "rounds"):
        md.append("Only %s of the %s planned rounds ran: the next one would not have fit in the time "
                  "budget (BENCH_BUDGET_SECONDS).\n" % (first(meta, "rounds"), first(meta, "rounds_planned")))
    md.append("![redsnap/redis throughput ratio per test](%s)\n" % args.svg_link)
    for key in series:
        mode, p = key
        prow = [r for r in rows if r[0] == key]
        md.append("### %s, -P %d\n" % (MODE_TEXT.get(mode, mode), p))
        if not prow:
            md.append("_No results._\n")
            continue
        md.append("| test | redis rps | redsnap rps | ratio | redis p99 ms | redsnap p99 ms |")
        md.append("|---|---:|---:|---:|---:|---:|")
        for (_, t, r_rps, s_rps, ratio, r_p99, s_p99, _n) in prow:
            md.append("| %s | %s | %s | %s | %s | %s |"
                      % (t, fmt_rps(r_rps), fmt_rps(s_rps), fmt_ratio(ratio), fmt_ms(r_p99), fmt_ms(s_p99)))
        ratios = [r[4] for r in prow if r[4]]
        if ratios:
            gm = statistics.geometric_mean(ratios)
            below = [r[1] for r in prow if r[4] is not None and r[4] < 1.0]
            md.append("\nGeometric mean of the ratios: **%.2f**. Ratios below 1.0: **%d of %d**%s.\n"
                      % (gm, len(below), len(ratios), (" (" + ", ".join(below) + ")") if below else ""))
        else:
            md.append("")
    missing = [m for m in first(meta, "missing").split(",") if m]
    if missing:
        md.append("**Not measured:** %s: redsnap answered \"unknown command\" when the benchmark ran, so "
                  "these tests were left out for both servers.\n" % ", ".join(missing))

    md.append("## Memory\n")
    md.append("Fresh servers, then the same %s `SET key:NNNNNNNNNNNN <%s-byte value>` commands sent to each "
              "as one RESP stream (`redis-cli --pipe`). RSS is VmRSS from `/proc/<pid>/status` (empty server, "
              "then loaded); used_memory is what each server reports in `INFO memory` (each server's own "
              "count of allocated bytes). The second table follows the same servers through a BGSAVE "
              "and an overwrite of every key, then a BGSAVE while 20 clients overwrite random keys "
              "(peak of the summed Pss of the server and its children, sampled every 50 ms; for "
              "redis-server that includes the fork and the pages it copied); both servers were "
              "started with snapshots possible (redsnap: a save point that never fires).\n"
              % ("{:,}".format(int(first(meta, "mem_keys", "0") or 0)), first(meta, "value_size")))
    md.append(mem_section(mem))

    failures = meta.get("failure", [])
    if failures:
        md.append("## Failures during the run\n")
        for f in failures:
            md.append("- %s" % f.strip())
        md.append("")
    md.append("## Reproduce\n")
    md.append("```sh\nscripts/bench.sh            # builds release, ~%d min on this machine\n"
              "BENCH_ROUNDS=1 BENCH_REQUESTS=20000 BENCH_MEM_KEYS=100000 scripts/bench.sh   # quick look\n```\n"
              % max(1, round(int(first(meta, "elapsed_seconds", "0") or 0) / 60)))
    text = "\n".join(md)
    # Keep the sections other scripts own (e.g. "## Persistence" from bench_persist.sh).
    foreign = kept_sections(args.out)
    if foreign:
        text = text.rstrip("\n") + "\n\n" + foreign
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)


# The "## " sections this script writes; any other section of an existing file is kept.
OWN_SECTIONS = {"Machine", "Throughput", "Memory", "Failures during the run", "Reproduce"}


def kept_sections(path):
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    parts = re.split(r"(?m)^(?=## )", text)
    kept = []
    for part in parts[1:]:  # parts[0] is the title and intro
        heading = part.splitlines()[0][3:].strip()
        if heading not in OWN_SECTIONS:
            kept.append(part.rstrip("\n") + "\n")
    return "\n".join(kept)


if __name__ == "__main__":
    main()
