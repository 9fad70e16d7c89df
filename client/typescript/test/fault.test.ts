// The store fails every write (the harness's fault proxy answers 500): the
// archive is refused as ArchiveFailed, "do not send", with the store's error.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { ArchiveFailed, Unavailable } from "../src/index.js";
import { SAMPLES, address } from "./samples.js";
import { ArchiveClient } from "../src/index.js";

const client = new ArchiveClient(address(), { timeoutMs: 30_000 });
after(() => client.close());

test("a store fault is ArchiveFailed, with the store's error and the attempts made", async () => {
  await assert.rejects(client.archive(SAMPLES.email.request), (err: unknown) => {
    assert.ok(err instanceof ArchiveFailed, String(err));
    assert.ok(err instanceof Unavailable);
    assert.equal(err.reason, "FAILED_TO_ARCHIVE");
    assert.equal(err.metadata["store_error"], "InternalError");
    assert.ok((err.attempts ?? 0) >= 2, `attempts ${err.attempts}`);
    return true;
  });
});

test("a sidecar that is not there is ArchiveFailed too: the copy was not stored", async () => {
  const nowhere = new ArchiveClient("127.0.0.1:9", { timeoutMs: 5_000, maxAttempts: 2 });
  try {
    await assert.rejects(nowhere.archive(SAMPLES.sms.request), (err: unknown) => {
      assert.ok(err instanceof ArchiveFailed, String(err));
      assert.equal(err.code, "UNAVAILABLE");
      assert.equal(err.reason, "");
      return true;
    });
  } finally {
    nowhere.close();
  }
});
