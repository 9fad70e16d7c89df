// A Node sender against a real sidecar on SeaweedFS: every channel archived and
// read back, bad input as the typed error naming the field, a stream of 1,000
// messages acked once each. The harness starts the sidecar and the store.

import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { after, test } from "node:test";

import { ArchiveClient, InvalidMessage, MsgArchiveError, type ArchiveRequestInit } from "../src/index.js";
import { SAMPLES, address, context } from "./samples.js";

const client = new ArchiveClient(address(), { timeoutMs: 30_000 });
after(() => client.close());

function acked(key: string): void {
  if (process.env.MSGARCHIVE_ACKED_FILE) {
    appendFileSync(process.env.MSGARCHIVE_ACKED_FILE, `${key}\n`);
  }
}

for (const [channel, { request, messageId }] of Object.entries(SAMPLES)) {
  test(`a ${channel} message is archived, then read back as stored`, async () => {
    const ack = await client.archive(request);
    acked(ack.key);
    assert.ok(ack.key.endsWith(`/${messageId}.json.lz4`), ack.key);
    assert.equal(ack.messageId, messageId);
    assert.ok(ack.storedBytes > 0n);
    const again = await client.archive(request);
    assert.equal(again.key, ack.key);
    assert.equal(again.alreadyArchived, true); // safe to retry: the same key
    const read = await client.getArchivedMessage({ locator: { case: "key", value: ack.key } });
    const copy = JSON.parse(read.archivedJson);
    assert.equal(copy.message_id, messageId);
    assert.equal(copy.campaign_name, "Flat Offer Sale Campaign");
    assert.equal(read.fileInfo?.key, ack.key);
  });
}

test("bad input is an InvalidMessage naming every field, and nothing is written", async () => {
  const bad: ArchiveRequestInit = {
    ...context,
    campaignId: "",
    message: { case: "sms", value: { to: "12", body: "Hi" } },
  };
  await assert.rejects(client.archive(bad), (err: unknown) => {
    assert.ok(err instanceof InvalidMessage, String(err));
    assert.ok(err instanceof MsgArchiveError);
    assert.equal(err.code, "INVALID_ARGUMENT");
    assert.equal(err.reason, "INVALID_MESSAGE");
    const fields = err.fieldViolations.map((v) => v.field);
    assert.ok(fields.includes("campaign_id"), fields.join(", "));
    assert.ok(fields.includes("sms.to"), fields.join(", "));
    return true;
  });
});

test("a lookup of a copy that is not there is CopyNotFound", async () => {
  const missing = SAMPLES.sms.messageId.replace(/^./, "0");
  await assert.rejects(
    client.getArchivedMessage({
      locator: { case: "key", value: `sent_messages/Sms/202408/1722529032/b3e2048d6e5378173713705fde6a93da/${missing}.json.lz4` },
    }),
    (err: unknown) => err instanceof MsgArchiveError && err.name === "CopyNotFound",
  );
});

test("a stream of 1,000 messages acks each once", async () => {
  function* messages(): Generator<ArchiveRequestInit> {
    for (let n = 0; n < 1000; n++) {
      yield {
        ...context,
        createdAtMs: context.createdAtMs + BigInt(n + 1),
        message: { case: "sms", value: { to: "+1 (555) 555-5555", body: `Message ${n}`, provider: "twilio" } },
      };
    }
  }
  const seen = new Map<string, number>();
  const keys = new Set<string>();
  for await (const result of client.archiveMany(messages(), { timeoutMs: 120_000 })) {
    assert.equal(result.error, undefined, String(result.error));
    assert.ok(result.ack);
    seen.set(result.requestId, (seen.get(result.requestId) ?? 0) + 1);
    keys.add(result.ack.key);
    acked(result.ack.key);
  }
  assert.equal(seen.size, 1000);
  assert.ok([...seen.values()].every((count) => count === 1));
  assert.equal(keys.size, 1000);
});

test("a call has a deadline: one too short to archive in is DeadlineExceeded", async () => {
  await assert.rejects(client.archive(SAMPLES.email.request, { timeoutMs: 1 }), (err: unknown) => {
    assert.ok(err instanceof MsgArchiveError);
    assert.equal(err.code, "DEADLINE_EXCEEDED");
    return true;
  });
});
