// One sample message per channel, as tests/samples.py has them, with the
// message ids worked out by hand there (sha256sum of the id inputs).

import { Platform, type ArchiveRequestInit } from "../src/index.js";

export const context = {
  accountId: "acc",
  batchId: "20240901",
  createdAtMs: 1722443282680n,
  customerIdentity: "45142169",
  campaignId: "1722529032",
  campaignName: "Flat Offer Sale Campaign",
};

export const SAMPLES: Record<string, { request: ArchiveRequestInit; messageId: string }> = {
  push: {
    request: {
      ...context,
      message: {
        case: "push",
        value: {
          to: "frfsgvrwe:APfdsa",
          platform: Platform.IOS,
          payloadJson: '{"alert":{"title":"Flat 20% off","body":"Today only"},"badge":3}',
          targetId: "42",
        },
      },
    },
    messageId: "d41040d4c9635362d4860fe6ff4d58ae2391014ded3bd03c4e273e68c493266a",
  },
  email: {
    request: {
      ...context,
      journeyId: "2450",
      journeyNodeId: "1",
      journeyName: "Flat Offer Sale Journey",
      message: {
        case: "email",
        value: {
          to: "  Jane.Doe@Example.com ",
          subject: "20% off coupon inside!",
          fromName: "Shop",
          fromAddress: "news@shop.example",
          htmlBody: "<p>Hi Jane</p>",
          plaintextBody: "Hi Jane",
        },
      },
    },
    messageId: "9c4b3acede12a977e7a136ba8f1ddc4a95970b7d5865078d4ee3bf5f7e848d8e",
  },
  sms: {
    request: {
      ...context,
      message: { case: "sms", value: { to: "+1 (555) 555-5555", body: "Hi there!", provider: "twilio" } },
    },
    messageId: "6d30816d5cd60e4704412c299e371b5f43daf3e5458e17fa984ab742c6a88b5f",
  },
  whatsapp: {
    request: {
      ...context,
      message: {
        case: "whatsapp",
        value: { to: "+1 555.555.5555", body: "Hi there!", provider: "twilio" },
      },
    },
    // The same recipient and campaign as the SMS: the same id, in another folder.
    messageId: "6d30816d5cd60e4704412c299e371b5f43daf3e5458e17fa984ab742c6a88b5f",
  },
};

/** The sidecar under test, from the test harness (tests/e2e/test_node_client.py). */
export function address(): string {
  const target = process.env.MSGARCHIVE_ADDRESS;
  if (!target) {
    throw new Error("MSGARCHIVE_ADDRESS is not set: run these through tests/e2e/test_node_client.py");
  }
  return target;
}
