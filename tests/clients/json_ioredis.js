#!/usr/bin/env node
// ioredis against redsnap's built-in JSON type through `call('JSON.SET', ...)`:
// every reply is checked here (exit 1 on the first mismatch); prints "ok".
//
// Usage: node json_ioredis.js HOST PORT
//
// Run by crates/server/tests/json_clients.rs. Only keys starting with "rsj:" are
// touched.
"use strict";

const Redis = require("ioredis");

function check(step, got, want) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) {
    console.error(`${step}: got ${g}, want ${w}`);
    process.exit(1);
  }
}

async function main() {
  const [host, port] = process.argv.slice(2);
  const r = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  await r.del("rsj:io");
  const doc = { service: "resonance", requests: 0, regions: ["eu"], ratio: 0.5 };
  check("set", await r.call("JSON.SET", "rsj:io", "$", JSON.stringify(doc)), "OK");
  check("get", JSON.parse(await r.call("JSON.GET", "rsj:io", "$")), [doc]);
  check("numincrby", await r.call("JSON.NUMINCRBY", "rsj:io", "$.requests", "7"), "[7]");
  check("numincrby float", await r.call("JSON.NUMINCRBY", "rsj:io", "$.ratio", "0.25"), "[0.75]");
  check("arrappend", await r.call("JSON.ARRAPPEND", "rsj:io", "$.regions", '"us"'), [2]);
  check("type", await r.call("JSON.TYPE", "rsj:io", "$.regions"), ["array"]);
  check("objkeys", await r.call("JSON.OBJKEYS", "rsj:io"), ["service", "requests", "regions", "ratio"]);
  check("resp", await r.call("JSON.RESP", "rsj:io", "$.regions"), [["[", "eu", "us"]]);
  check("legacy get", await r.call("JSON.GET", "rsj:io", ".requests"), "7");
  check("pipeline", await r.pipeline()
    .call("JSON.SET", "rsj:io", "$.requests", "1")
    .call("JSON.GET", "rsj:io", "$.requests")
    .exec(), [[null, "OK"], [null, "[1]"]]);
  let err = null;
  try {
    await r.call("JSON.SET", "rsj:io", "$.x", "{");
  } catch (e) {
    err = e.message;
  }
  check("malformed", err, "EOF while parsing an object at line 1 column 1");
  check("unchanged", await r.call("JSON.GET", "rsj:io", "$.x"), "[]");
  check("del", await r.call("JSON.DEL", "rsj:io"), 1);
  r.disconnect();
  console.log("ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
