#!/usr/bin/env python3
"""redis-py connecting as a named ACL user: with username/password, with a
credential provider, and with a wrong password; printed as a JSON transcript
(one {"step": ..., "result": ...} per line) that must be the same against a real
redis-server and against redsnap (crates/server/tests/clients.rs).

Usage: client_acl.py HOST PORT [2|3]

Creates the user "rsc-acl" (deleted at the end) and touches only "rsc:acl:*" keys.
"""

import json
import sys

import redis
from redis.credentials import UsernamePasswordCredentialProvider

USER, PASSWORD = "rsc-acl", "rsc-acl-secret"


def norm(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, redis.exceptions.ResponseError):
        return {"error": type(v).__name__ + ": " + str(v)}
    if isinstance(v, BaseException):
        return {"exception": type(v).__name__}
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    return v


def step(name, f):
    try:
        r = f()
    except BaseException as e:  # noqa: BLE001 - the transcript records it
        r = e
    print(json.dumps({"step": name, "result": norm(r)}, sort_keys=True), flush=True)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    proto = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    admin = redis.Redis(host=host, port=port, protocol=proto)
    admin.delete("rsc:acl:k", "rsc:other")
    step("setuser", lambda: admin.execute_command(
        "ACL", "SETUSER", USER, "reset", "on", ">" + PASSWORD, "~rsc:acl:*",
        "+@read", "+@write", "+ping", "+acl|whoami", "-@dangerous"))
    user = redis.Redis(host=host, port=port, protocol=proto,
                       username=USER, password=PASSWORD)
    step("ping", user.ping)
    step("whoami", lambda: user.execute_command("ACL", "WHOAMI"))
    step("set own key", lambda: user.set("rsc:acl:k", "v"))
    step("get own key", lambda: user.get("rsc:acl:k"))
    step("set other key", lambda: user.set("rsc:other", "v"))
    step("flushall", user.flushall)
    step("keys", lambda: user.keys("*"))
    provider = UsernamePasswordCredentialProvider(USER, PASSWORD)
    via_provider = redis.Redis(host=host, port=port, protocol=proto,
                               credential_provider=provider)
    step("provider whoami", lambda: via_provider.execute_command("ACL", "WHOAMI"))
    step("provider get", lambda: via_provider.get("rsc:acl:k"))
    wrong = redis.Redis(host=host, port=port, protocol=proto,
                        username=USER, password="not-the-password")
    step("wrong password", wrong.ping)
    step("deluser", lambda: admin.execute_command("ACL", "DELUSER", USER))
    step("cleanup", lambda: admin.delete("rsc:acl:k"))


if __name__ == "__main__":
    main()
