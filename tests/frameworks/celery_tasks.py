#!/usr/bin/env python3
"""Celery (kombu's Redis transport as the broker, the Redis result backend)
against a Redis-compatible server, with an in-process worker (solo pool):
plain tasks and their results, a failing task and its traceback, retries
(autoretry_for with countdown 0, self.retry with countdown 1), countdown/ETA
(kombu's unacked hash + unacked_index ZSET), chains, groups, chords (the
backend's chord counter), revocation (a broadcast over the pidbox fanout
exchange), a far-off ETA task handed back to the queue when the worker stops,
the TTL on result keys, and kombu directly: SimpleQueue put/get,
priorities (priority_steps + queue_order_strategy spread one queue over
several lists) and a fanout exchange (PUBLISH under "/0." prefixes) with two
consumers.

Prints one JSON summary without timings or random IDs, so a real
redis-server and redsnap must print the same line; see
crates/server/tests/frameworks.rs.

Usage: celery_tasks.py HOST PORT

Uses databases 4 (broker) and 5 (results), flushed before and after. Every
wait has a timeout and the whole script gives up after DEADLINE seconds.
"""

import json
import logging
import signal
import sys
import time

import redis
from celery import Celery, chain, chord, group
from celery.contrib.testing.worker import start_worker
from kombu import Connection, Consumer, Exchange, Producer, Queue

DEADLINE = 60
WAIT = 15  # seconds for any one result
BROKER_DB, RESULT_DB = 4, 5
EXPIRES = 600


def _give_up(_signum, _frame):
    print(f"celery_tasks.py: gave up after {DEADLINE} s", file=sys.stderr)
    sys.exit(3)


def make_app(host, port):
    app = Celery(
        "rsfw",
        broker=f"redis://{host}:{port}/{BROKER_DB}",
        backend=f"redis://{host}:{port}/{RESULT_DB}",
    )
    app.conf.update(
        result_expires=EXPIRES,
        task_default_queue="rsfw",
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=False,
        broker_transport_options={"visibility_timeout": 3600},
        result_extended=True,
    )
    counters = redis.Redis(host=host, port=port, db=RESULT_DB, socket_timeout=5)

    @app.task(name="rsfw.add")
    def add(a, b):
        return a + b

    @app.task(name="rsfw.mul")
    def mul(a, b):
        return a * b

    @app.task(name="rsfw.tsum")
    def tsum(values):
        return sum(values)

    @app.task(name="rsfw.explode")
    def explode(msg):
        raise ValueError(msg)

    @app.task(name="rsfw.flaky", autoretry_for=(RuntimeError,),
              retry_kwargs={"max_retries": 3, "countdown": 0})
    def flaky():
        n = counters.incr("rsfw:flaky")
        if n < 3:
            raise RuntimeError(f"attempt {n} fails")
        return f"ok after {n - 1} failures"

    @app.task(name="rsfw.patient", bind=True, max_retries=2)
    def patient(self):
        n = counters.incr("rsfw:patient")
        if n < 2:
            raise self.retry(countdown=1)
        return {"attempts": n, "retries": self.request.retries}

    return app


def flush(host, port):
    for db in (BROKER_DB, RESULT_DB):
        redis.Redis(host=host, port=port, db=db, socket_timeout=10).flushdb()


def celery_part(app, host, port, s):
    t = app.tasks
    rb = redis.Redis(host=host, port=port, db=RESULT_DB, socket_timeout=10)
    rbk = redis.Redis(host=host, port=port, db=BROKER_DB, socket_timeout=10)
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=10):
        plain = t["rsfw.add"].apply_async((2, 3), task_id="rsfw-add")
        s["plain"] = [plain.get(timeout=WAIT), plain.state]
        failing = t["rsfw.explode"].apply_async(("boom",), task_id="rsfw-explode")
        failing.get(timeout=WAIT, propagate=False)
        s["failing"] = [failing.state, type(failing.result).__name__, str(failing.result),
                        failing.traceback.strip().splitlines()[-1]]
        flaky = t["rsfw.flaky"].apply_async(task_id="rsfw-flaky")
        s["autoretry"] = [flaky.get(timeout=WAIT), flaky.state]
        patient = t["rsfw.patient"].apply_async(task_id="rsfw-patient")
        s["self_retry"] = [patient.get(timeout=WAIT), patient.state]
        later = t["rsfw.mul"].apply_async((6, 7), countdown=1, task_id="rsfw-later")
        s["countdown"] = [later.get(timeout=WAIT), later.state]
        s["chain"] = chain(t["rsfw.add"].s(2, 2), t["rsfw.mul"].s(4)).apply_async().get(timeout=WAIT)
        g = group(t["rsfw.add"].s(i, i) for i in range(5)).apply_async()
        s["group"] = g.get(timeout=WAIT)
        c = chord((t["rsfw.add"].s(i, i) for i in range(6)), t["rsfw.tsum"].s()).apply_async()
        s["chord"] = c.get(timeout=WAIT)
        # The backend's chord counter (<group>.j list, .t total) is gone once it fires.
        s["chord_counter_keys_left"] = sorted(
            k.decode() for p in ("*.j", "*.t", "chord-unlock*") for k in rb.scan_iter(match=p)
        )
        # Revoke a task still waiting for its ETA; the worker records REVOKED when it is due.
        victim = t["rsfw.add"].apply_async((1, 1), countdown=2, task_id="rsfw-revoked")
        victim.revoke()
        victim.get(timeout=WAIT, propagate=False)
        s["revoked"] = victim.state
        s["result_meta"] = {
            k: json.loads(rb.get(f"celery-task-meta-{k}") or "null").get("status")
            for k in ("rsfw-add", "rsfw-explode", "rsfw-flaky", "rsfw-patient", "rsfw-revoked")
        }
        s["result_ttl_ok"] = 0 < rb.ttl("celery-task-meta-rsfw-add") <= EXPIRES
        kinds = {}
        for k in rb.scan_iter(match="celery-task-meta-*", count=1000):
            kinds[rb.type(k).decode()] = kinds.get(rb.type(k).decode(), 0) + 1
        s["result_key_types"] = kinds
        s["counters"] = [int(rb.get("rsfw:flaky")), int(rb.get("rsfw:patient"))]
        # A task whose ETA is far off waits in the worker (unacked); stopping the
        # worker puts it back on the queue list.
        t["rsfw.add"].apply_async((9, 9), countdown=3600, task_id="rsfw-far")
        for _ in range(100):  # up to 5 s for the worker to take it
            if rbk.hlen("unacked") >= 1:
                break
            time.sleep(0.05)
        s["far_eta_held"] = [rbk.hlen("unacked"), rbk.zcard("unacked_index"), rbk.llen("rsfw")]
        # Remote control over the pidbox (fanout exchange + a reply queue).
        pongs = app.control.ping(timeout=10, limit=1)
        s["control_ping"] = sorted(v.get("ok") for reply in pongs for v in reply.values())
    s["far_eta_after_stop"] = [rbk.hlen("unacked"), rbk.zcard("unacked_index"), rbk.llen("rsfw")]


def kombu_part(host, port, s):
    url = f"redis://{host}:{port}/{BROKER_DB}"
    with Connection(url, transport_options={"polling_interval": 0.1}) as conn:
        sq = conn.SimpleQueue("rsfw.simple")
        for i in range(3):
            sq.put({"n": i})
        got = []
        for _ in range(3):
            m = sq.get(block=True, timeout=5)
            got.append(m.payload)
            m.ack()
        try:
            sq.get(block=True, timeout=0.5)
            got.append("unexpected")
        except sq.Empty:
            got.append("empty")
        s["simple_queue"] = got
        sq.close()

    # A message taken but not acked sits in kombu's "unacked" hash and
    # "unacked_index" ZSET; restore_visible (visibility timeout passed) puts it
    # back on its list, and it comes back marked redelivered.
    opts = {"visibility_timeout": 1}
    with Connection(url, transport_options=opts) as conn:
        sq = conn.SimpleQueue("rsfw.unacked")
        sq.put({"n": "again"})
        first = sq.get(block=True, timeout=5)
        rb = redis.Redis(host=host, port=port, db=BROKER_DB, socket_timeout=10)
        pending = [rb.hlen("unacked"), rb.zcard("unacked_index"), rb.llen("rsfw.unacked")]
        again = None
        for _ in range(40):  # up to ~6 s: visibility timeout 1 s
            conn.default_channel.qos.restore_visible(num=10)
            try:
                again = sq.get(block=True, timeout=0.15)
                break
            except sq.Empty:
                pass
        s["unacked_restore"] = {
            "pending_before": pending,
            "first": first.payload,
            "again": again.payload if again else None,
            "redelivered": bool(again and again.delivery_info.get("redelivered")),
        }
        if again:
            again.ack()
        s["unacked_restore"]["after_ack"] = [rb.hlen("unacked"), rb.zcard("unacked_index")]
        sq.close()

    opts = {"priority_steps": [0, 3, 6, 9], "queue_order_strategy": "priority"}
    with Connection(url, transport_options=opts) as conn:
        pq = conn.SimpleQueue("rsfw.prio")
        for body, prio in (("low", 9), ("mid", 5), ("high", 0), ("mid2", 4)):
            pq.put(body, priority=prio)
        rb = redis.Redis(host=host, port=port, db=BROKER_DB, socket_timeout=10)
        s["priority_lists"] = sorted(
            [k.decode(), rb.llen(k)] for k in rb.scan_iter(match="rsfw.prio*", count=1000)
        )
        order = []
        for _ in range(4):
            m = pq.get(block=True, timeout=5)
            order.append(m.payload)
            m.ack()
        s["priority_order"] = order
        pq.close()

    fan = Exchange("rsfw.fan", type="fanout", durable=False)
    with Connection(url) as c1, Connection(url) as c2, Connection(url) as cp:
        got = {"a": [], "b": []}
        cons = []
        for name, c in (("a", c1), ("b", c2)):
            q = Queue(f"rsfw.fan.{name}", exchange=fan, durable=False, auto_delete=True)

            def on_message(body, message, name=name):
                got[name].append(body)
                message.ack()

            consumer = Consumer(c.default_channel, [q], callbacks=[on_message], accept=["json"])
            consumer.consume()
            cons.append(consumer)
        # kombu sends PSUBSCRIBE when a connection first drains: drain until
        # CLIENT LIST shows both consumers subscribed to a pattern.
        rb = redis.Redis(host=host, port=port, db=BROKER_DB, socket_timeout=10)
        for _ in range(50):
            for c in (c1, c2):
                try:
                    c.drain_events(timeout=0.05)
                except TimeoutError:
                    pass
            if sum(1 for cl in rb.client_list() if int(cl.get("psub", 0)) > 0) >= 2:
                break
        s["fanout_subscribers"] = sum(1 for cl in rb.client_list() if int(cl.get("psub", 0)) > 0)
        producer = Producer(cp.default_channel, exchange=fan, serializer="json")
        for i in range(2):
            producer.publish({"fan": i}, routing_key="")
        for name, c in (("a", c1), ("b", c2)):
            for _ in range(20):
                if len(got[name]) >= 2:
                    break
                try:
                    c.drain_events(timeout=0.5)
                except TimeoutError:
                    pass
        s["fanout"] = got
        for consumer in cons:
            consumer.cancel()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(DEADLINE)
    logging.basicConfig(level=logging.ERROR)
    flush(host, port)
    s = {}
    celery_part(make_app(host, port), host, port, s)
    kombu_part(host, port, s)
    flush(host, port)
    signal.alarm(0)
    print(json.dumps(s, sort_keys=True))


if __name__ == "__main__":
    main()
