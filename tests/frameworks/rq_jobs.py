#!/usr/bin/env python3
"""RQ against a Redis-compatible server: enqueue jobs (plain, failing, retried,
dependent, bulk), run them with an in-process SimpleWorker in burst mode and
read back their statuses, return values and the results stream RQ keeps per
job (rq:results:<id>, written with XADD inside the MULTI/EXEC that finishes a
job). Prints one JSON summary without timings or random IDs, so a real
redis-server and redsnap must print the same line; see
crates/server/tests/frameworks.rs.

Usage: rq_jobs.py HOST PORT

Only keys starting with "rq:" and "rsfw:" are touched. Every socket operation
has a timeout and the whole script gives up after DEADLINE seconds.
"""

import json
import signal
import sys

import redis
from rq import Queue, Retry, SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry

DEADLINE = 60
COUNTER = "rsfw:rq:flaky-attempts"


def _give_up(_signum, _frame):
    print(f"rq_jobs.py: gave up after {DEADLINE} s", file=sys.stderr)
    sys.exit(3)


# --- job functions (enqueued by name: the worker imports them as rq_jobs.*) ---

def add(a, b):
    return a + b


def shout(word):
    return {"word": word.upper(), "length": len(word)}


def explode(msg):
    raise ValueError(msg)


def flaky(host, port):
    """Fails on its first run and succeeds on the retry (the count is kept in
    the server so it survives between attempts)."""
    r = redis.Redis(host=host, port=port, socket_timeout=5)
    n = r.incr(COUNTER)
    if n == 1:
        raise RuntimeError("flaky fails its first attempt")
    return f"ok after {n - 1} failure(s)"


def after(value):
    return ["dependent ran", value]


# --- scenario ------------------------------------------------------------------

def clean(r):
    for pattern in ("rq:*", "rsfw:*"):
        keys = list(r.scan_iter(match=pattern, count=1000))
        if keys:
            r.delete(*keys)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(DEADLINE)
    r = redis.Redis(host=host, port=port, socket_timeout=10, socket_connect_timeout=5)
    clean(r)

    q = Queue("rsfw", connection=r)
    jobs = {
        "add": q.enqueue("rq_jobs.add", 2, 3, job_id="rsfw-add"),
        "shout": q.enqueue("rq_jobs.shout", "redsnap", job_id="rsfw-shout"),
        "explode": q.enqueue("rq_jobs.explode", "boom", job_id="rsfw-explode"),
        "flaky": q.enqueue("rq_jobs.flaky", host, port, job_id="rsfw-flaky", retry=Retry(max=2)),
    }
    jobs["after"] = q.enqueue("rq_jobs.after", 42, job_id="rsfw-after", depends_on=jobs["add"])
    bulk = q.enqueue_many(
        [Queue.prepare_data("rq_jobs.add", (i, i), job_id=f"rsfw-bulk-{i}") for i in range(5)]
    )
    summary = {
        "queued_before": len(q),
        "queued_ids": sorted(q.job_ids),
        "status_before": {k: j.get_status() for k, j in jobs.items()},
    }

    worker = SimpleWorker([q], connection=r)
    summary["worked"] = worker.work(burst=True, logging_level="WARNING")

    def describe(job):
        job = Job.fetch(job.id, connection=r)
        latest = job.latest_result()
        results = job.results()
        return {
            "status": job.get_status(),
            "return_value": job.return_value(),
            "latest_result_type": latest.type.name if latest else None,
            "results_stream_len": len(results),
            "results_types": [x.type.name for x in results],
            "error_mentions": (
                latest.exc_string.strip().splitlines()[-1]
                if latest and latest.exc_string
                else None
            ),
            "retries_left": job.retries_left,
        }

    summary["jobs"] = {k: describe(j) for k, j in jobs.items()}
    summary["bulk_results"] = [Job.fetch(j.id, connection=r).return_value() for j in bulk]
    summary["finished_registry"] = sorted(FinishedJobRegistry(queue=q).get_job_ids())
    summary["failed_registry"] = sorted(FailedJobRegistry(queue=q).get_job_ids())
    summary["queued_after"] = len(q)
    summary["flaky_attempts"] = int(r.get(COUNTER) or 0)
    summary["results_key_types"] = sorted(
        {r.type(k).decode() for k in r.scan_iter(match="rq:results:*", count=1000)}
    )
    clean(r)
    signal.alarm(0)
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
