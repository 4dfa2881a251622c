#!/usr/bin/env node
// BullMQ against a Redis-compatible server: a queue with two workers, a job
// that fails once and succeeds on its retry, a job that runs out of attempts,
// a delayed job and a repeatable job (a job scheduler with a limit). Prints one
// JSON summary that does not depend on timing (results, attempts, final
// states, job counts, how many of each event the queue's event stream holds),
// so a real redis-server and redsnap must print the same line; see
// crates/server/tests/frameworks.rs.
//
// Usage: node bullmq_queue.js HOST PORT
//
// Only keys under the "rsfw" prefix are touched (the queue is obliterated
// before and after). Every wait is bounded; the whole script gives up after
// DEADLINE_MS.
"use strict";

const { Queue, Worker, QueueEvents } = require("bullmq");
const IORedis = require("ioredis");

const host = process.argv[2] || "127.0.0.1";
const port = Number(process.argv[3] || 6379);
const PREFIX = "rsfw";
const QUEUE = "bullq";
const DEADLINE_MS = 60000;

const guard = setTimeout(() => {
  console.error(`bullmq_queue.js: gave up after ${DEADLINE_MS} ms`);
  process.exit(3);
}, DEADLINE_MS);

function connection() {
  return new IORedis({
    host,
    port,
    maxRetriesPerRequest: null,
    connectTimeout: 5000,
    retryStrategy: (times) => (times > 20 ? null : 100),
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(what, pred, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

async function main() {
  const conns = [];
  const conn = () => {
    const c = connection();
    conns.push(c);
    return c;
  };
  const queue = new Queue(QUEUE, { connection: conn(), prefix: PREFIX });
  await queue.obliterate({ force: true });
  const events = new QueueEvents(QUEUE, { connection: conn(), prefix: PREFIX });
  await events.waitUntilReady();

  const completed = [];
  const failed = [];
  events.on("completed", ({ jobId }) => completed.push(jobId));
  events.on("failed", ({ jobId }) => failed.push(jobId));

  const summary = {};

  // Jobs added before any worker runs: they wait.
  const plain = [];
  for (let i = 1; i <= 6; i++) {
    plain.push(await queue.add("double", { x: i }, { jobId: `j-double-${i}` }));
  }
  const flaky = await queue.add(
    "flaky",
    { x: 7 },
    { jobId: "j-flaky", attempts: 3, backoff: { type: "fixed", delay: 100 } },
  );
  const doomed = await queue.add(
    "doomed",
    { x: 8 },
    { jobId: "j-doomed", attempts: 2, backoff: { type: "fixed", delay: 50 } },
  );
  const delayed = await queue.add("double", { x: 100 }, { jobId: "j-delayed", delay: 700 });
  summary.delayed_state_before = await delayed.getState();
  summary.counts_before = await queue.getJobCounts(
    "waiting", "active", "delayed", "completed", "failed",
  );
  summary.waiting_ids = (await queue.getWaiting()).map((j) => j.id).sort();

  // A repeatable job: a job scheduler that fires three times, 150 ms apart.
  await queue.upsertJobScheduler(
    "tick-scheduler",
    { every: 150, limit: 3 },
    { name: "tick", data: { x: 1 } },
  );
  summary.schedulers = (await queue.getJobSchedulers()).map((s) => ({
    key: s.key,
    every: s.every,
    limit: s.limit,
    name: s.name,
  }));

  const processor = async (job) => {
    switch (job.name) {
      case "double":
        return job.data.x * 2;
      case "flaky":
        if (job.attemptsMade === 0) throw new Error("flaky fails its first attempt");
        return `flaky ok after ${job.attemptsMade} failure(s)`;
      case "doomed":
        throw new Error("doomed always fails");
      case "tick":
        return "tick";
      default:
        throw new Error(`unknown job ${job.name}`);
    }
  };
  const workers = [
    new Worker(QUEUE, processor, { connection: conn(), prefix: PREFIX, concurrency: 2 }),
    new Worker(QUEUE, processor, { connection: conn(), prefix: PREFIX, concurrency: 1 }),
  ];
  for (const w of workers) await w.waitUntilReady();

  const ticksDone = async () =>
    (await queue.getCompleted(0, -1)).filter((j) => j.name === "tick").length >= 3;
  await waitFor("the plain, flaky, doomed and delayed jobs", async () => {
    const c = await queue.getJobCounts("completed", "failed");
    return c.completed >= 8 + 3 && c.failed >= 1;
  });
  await waitFor("three ticks", ticksDone);
  await waitFor("the queue events", async () => completed.length >= 11 && failed.length >= 1);

  for (const w of workers) await w.close();

  const describe = async (id) => {
    const j = await queue.getJob(id);
    if (!j) return null;
    return {
      name: j.name,
      data: j.data,
      state: await j.getState(),
      returnvalue: j.returnvalue === undefined ? null : j.returnvalue,
      attemptsMade: j.attemptsMade,
      failedReason: j.failedReason || null,
      delay: j.opts.delay || 0,
    };
  };
  summary.jobs = {};
  for (const j of [...plain, flaky, doomed, delayed]) summary.jobs[j.id] = await describe(j.id);
  const ticks = (await queue.getCompleted(0, -1)).filter((j) => j.name === "tick");
  summary.ticks = ticks
    .map((j) => ({ returnvalue: j.returnvalue, attemptsMade: j.attemptsMade, data: j.data }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  summary.tick_count = ticks.length;
  summary.counts_after = await queue.getJobCounts(
    "waiting", "active", "delayed", "completed", "failed",
  );
  summary.failed_ids = (await queue.getFailed()).map((j) => j.id).sort();
  summary.events_seen = { completed: completed.length >= 11, failed: failed.includes("j-doomed") };

  // The queue's event stream (XADD'ed by BullMQ's scripts): which events it holds.
  const raw = conn();
  const stream = await raw.xrange(`${PREFIX}:${QUEUE}:events`, "-", "+");
  const kinds = {};
  for (const [, fields] of stream) {
    const ev = fields[fields.indexOf("event") + 1];
    kinds[ev] = (kinds[ev] || 0) + 1;
  }
  summary.event_stream_has = Object.keys(kinds).sort();
  summary.event_stream_completed = kinds.completed || 0;

  await queue.removeJobScheduler("tick-scheduler");
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
  for (const c of conns) c.disconnect();
  clearTimeout(guard);
  console.log(JSON.stringify(summary));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
