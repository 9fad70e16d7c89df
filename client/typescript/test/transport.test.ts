// The same client over mTLS and over a unix socket: the harness starts one
// sidecar of each (MSGARCHIVE_TLS_ADDRESS with the CA and a client certificate
// in MSGARCHIVE_TLS_DIR; MSGARCHIVE_UNIX_ADDRESS).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { ArchiveClient, ArchiveFailed } from "../src/index.js";
import { SAMPLES } from "./samples.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these through tests/e2e/test_node_client.py`);
  }
  return value;
}

test("over mTLS, with the sidecar's CA and a client certificate", async () => {
  const dir = required("MSGARCHIVE_TLS_DIR");
  const client = new ArchiveClient(required("MSGARCHIVE_TLS_ADDRESS"), {
    tls: {
      ca: readFileSync(join(dir, "ca.pem")),
      cert: readFileSync(join(dir, "client_cert.pem")),
      key: readFileSync(join(dir, "client_key.pem")),
    },
  });
  try {
    const ack = await client.archive(SAMPLES.push.request);
    assert.ok(ack.key.endsWith(`/${SAMPLES.push.messageId}.json.lz4`));
  } finally {
    client.close();
  }
  // Without a client certificate the sidecar refuses the connection: no ack.
  const anonymous = new ArchiveClient(required("MSGARCHIVE_TLS_ADDRESS"), {
    tls: { ca: readFileSync(join(dir, "ca.pem")) },
    maxAttempts: 1,
  });
  try {
    await assert.rejects(anonymous.archive(SAMPLES.push.request), ArchiveFailed);
  } finally {
    anonymous.close();
  }
});

test("over a unix socket", async () => {
  const client = new ArchiveClient(required("MSGARCHIVE_UNIX_ADDRESS"));
  try {
    const ack = await client.archive(SAMPLES.email.request);
    assert.ok(ack.key.endsWith(`/${SAMPLES.email.messageId}.json.lz4`));
  } finally {
    client.close();
  }
});
