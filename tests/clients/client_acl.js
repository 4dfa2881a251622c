#!/usr/bin/env node
// ioredis connecting as a named ACL user (username/password), and with a wrong
// password; printed as a JSON transcript (one {"step": ..., "result": ...} per
// line) that must be the same against a real redis-server and against redsnap
// (crates/server/tests/clients.rs).
//
// Usage: node client_acl.js HOST PORT [2]
//
// Creates the user "rsc-acl" (deleted at the end); touches only "rsc:acl:*" keys.
"use strict";

const Redis = require("ioredis");

const USER = "rsc-acl";
const PASSWORD = "rsc-acl-secret";

function norm(v) {
  if (v === undefined) return null;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  if (v instanceof Error) {
    return v.name === "ReplyError" ? { error: v.message } : { exception: v.name };
  }
  if (Array.isArray(v)) return v.map(norm);
  return v;
}

async function step(name, f) {
  let r;
  try {
    r = await f();
  } catch (e) {
    r = e;
  }
  console.log(JSON.stringify({ step: name, result: norm(r) }));
}

async function main() {
  const [host, port] = [process.argv[2], Number(process.argv[3])];
  const opts = { host, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null };
  const admin = new Redis(opts);
  await admin.connect();
  await admin.del("rsc:acl:k", "rsc:other");
  await step("setuser", () => admin.call("ACL", "SETUSER", USER, "reset", "on", ">" + PASSWORD,
    "~rsc:acl:*", "+@read", "+@write", "+ping", "+acl|whoami", "-@dangerous", "+info"));
  const user = new Redis({ ...opts, username: USER, password: PASSWORD });
  await step("connect", () => user.connect().then(() => "connected"));
  await step("ping", () => user.ping());
  await step("whoami", () => user.call("ACL", "WHOAMI"));
  await step("set own key", () => user.set("rsc:acl:k", "v"));
  await step("get own key", () => user.get("rsc:acl:k"));
  await step("set other key", () => user.set("rsc:other", "v"));
  await step("flushall", () => user.flushall());
  await step("keys", () => user.keys("*"));
  const wrong = new Redis({ ...opts, username: USER, password: "not-the-password" });
  wrong.on("error", () => {});
  await step("wrong password", () => wrong.connect().then(() => wrong.ping()));
  await step("deluser", () => admin.call("ACL", "DELUSER", USER));
  await step("cleanup", () => admin.del("rsc:acl:k"));
  user.disconnect();
  wrong.disconnect();
  admin.disconnect();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
