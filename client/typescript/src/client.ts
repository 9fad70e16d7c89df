// The client senders use: archive a message, get the ack or a typed error.
//
// `archive()` resolves only when the copy is stored; otherwise it rejects with
// a `MsgArchiveError` subclass chosen by the sidecar's ErrorInfo reason. Only
// UNAVAILABLE is retried (AIP-194), which is safe because an archive retried
// lands on the same key. Every call has a deadline.

import * as net from "node:net";

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

import { fromArchiveError, fromConnectError, type MsgArchiveError } from "./errors.js";
import {
  ArchiveRequestSchema,
  ArchiveService,
  ArchiveStreamRequestSchema,
  GetArchivedMessageRequestSchema,
  ListArchivedMessagesRequestSchema,
  ViewMessageRequestSchema,
  type ArchiveResponse,
  type ArchivedMessageSummary,
  type GetArchivedMessageResponse,
  type ListArchivedMessagesResponse,
  type ViewMessageResponse,
} from "./gen/msgarchive/v1/archive_service_pb.js";

export const DEFAULT_TARGET = "127.0.0.1:50051";
export const DEFAULT_TIMEOUT_MS = 10_000;
// A read answer carries a copy of up to the sidecar's message limit and its
// content again: above gRPC's 4 MiB default.
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

export type ArchiveRequestInit = MessageInitShape<typeof ArchiveRequestSchema>;
export type ViewMessageRequestInit = MessageInitShape<typeof ViewMessageRequestSchema>;
export type GetArchivedMessageRequestInit = MessageInitShape<typeof GetArchivedMessageRequestSchema>;
export type ListArchivedMessagesRequestInit = MessageInitShape<
  typeof ListArchivedMessagesRequestSchema
>;

export interface TlsOptions {
  /** The CA that signed the sidecar's certificate (PEM). */
  ca?: string | Buffer;
  /** For mTLS: this sender's certificate and key (PEM). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** The name the sidecar's certificate is for, when not the target's host. */
  serverName?: string;
}

export interface ClientOptions {
  /** The default deadline of each call, in milliseconds (10,000). */
  timeoutMs?: number;
  /** TLS, or mTLS with `cert` and `key`; plaintext without (a sidecar on loopback). */
  tls?: TlsOptions;
  /** An API key (sent as Bearer, or as Basic with `accountId`), for the reads. */
  apiKey?: string;
  accountId?: string;
  /** Attempts of a unary call on UNAVAILABLE, the first included (3). */
  maxAttempts?: number;
}

export interface CallOptions {
  /** This call's deadline, in milliseconds (default: the client's). */
  timeoutMs?: number;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

/** One message's outcome on a stream: its ack, or why it was not archived. */
export interface StreamResult {
  requestId: string;
  ack?: ArchiveResponse;
  error?: MsgArchiveError;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retry a unary call on UNAVAILABLE, with exponential backoff and full jitter. */
function retryUnavailable(maxAttempts: number): Interceptor {
  return (next) => async (request) => {
    if (request.stream) {
      return next(request); // a stream's messages are answered one by one
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(request);
      } catch (err) {
        const failed = ConnectError.from(err);
        if (failed.code !== Code.Unavailable || attempt >= maxAttempts || request.signal.aborted) {
          throw err;
        }
        await sleep(Math.random() * Math.min(1000, 100 * 2 ** (attempt - 1)));
      }
    }
  };
}

function authorization(apiKey: string, accountId?: string): string {
  if (accountId) {
    return `Basic ${Buffer.from(`${accountId}:${apiKey}`).toString("base64")}`;
  }
  return `Bearer ${apiKey}`;
}

/**
 * A client of the sidecar. `target` is `host:port` or `unix:/path`.
 *
 * ```ts
 * const archive = new ArchiveClient("127.0.0.1:50051");
 * const ack = await archive.archive({ ..., message: { case: "sms", value: { ... } } });
 * // deliver the message only now: ack.key is where its copy is
 * ```
 */
export class ArchiveClient {
  readonly target: string;
  readonly timeoutMs: number;
  private readonly client: Client<typeof ArchiveService>;
  private readonly sessions: Http2SessionManager;
  private readonly headers: Record<string, string>;

  constructor(target: string = DEFAULT_TARGET, options: ClientOptions = {}) {
    this.target = target;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.headers = options.apiKey
      ? { authorization: authorization(options.apiKey, options.accountId) }
      : {};
    const tls = options.tls;
    let baseUrl: string;
    let nodeOptions: Record<string, unknown> = {};
    if (target.startsWith("unix:")) {
      const path = target.slice("unix:".length).replace(/^\/\/(?=\/)/, "");
      baseUrl = `${tls ? "https" : "http"}://localhost`;
      nodeOptions = { createConnection: () => net.connect(path) };
    } else {
      baseUrl = `${tls ? "https" : "http"}://${target}`;
    }
    if (tls) {
      nodeOptions = {
        ...nodeOptions,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        servername: tls.serverName,
      };
    }
    this.sessions = new Http2SessionManager(baseUrl, { idleConnectionTimeoutMs: 60_000 }, nodeOptions);
    const transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.sessions,
      readMaxBytes: MAX_RECEIVE_BYTES,
      interceptors: [retryUnavailable(options.maxAttempts ?? 3)],
    });
    this.client = createClient(ArchiveService, transport);
  }

  /** Archive one message; resolve with the ack once its copy is stored. */
  async archive(request: ArchiveRequestInit, options: CallOptions = {}): Promise<ArchiveResponse> {
    return this.call(() => this.client.archive(create(ArchiveRequestSchema, request), this.options(options)), true);
  }

  /**
   * Archive many messages on one ArchiveStream, pipelined. Yields one result
   * per message as it completes (not in order), matched by `requestId` (a
   * message without one gets its index). Send a message only once its result
   * has an ack. `timeoutMs` bounds the whole stream (none by default). Throws a
   * `MsgArchiveError` if the stream itself fails: the messages without a
   * result were then not archived.
   */
  async *archiveMany(
    requests: Iterable<ArchiveRequestInit> | AsyncIterable<ArchiveRequestInit>,
    options: CallOptions = {},
  ): AsyncGenerator<StreamResult> {
    async function* messages() {
      let index = 0;
      for await (const request of requests) {
        const message = create(ArchiveRequestSchema, request);
        if (!message.requestId) {
          message.requestId = String(index);
        }
        index++;
        yield create(ArchiveStreamRequestSchema, { archive: message });
      }
    }
    const call = this.options({ ...options, timeoutMs: options.timeoutMs ?? 0 });
    try {
      for await (const response of this.client.archiveStream(messages(), call)) {
        if (response.result.case === "ack") {
          yield { requestId: response.requestId, ack: response.result.value };
        } else if (response.result.case === "error") {
          yield { requestId: response.requestId, error: fromArchiveError(response.result.value) };
        }
      }
    } catch (err) {
      throw fromConnectError(err, true);
    }
  }

  /** The copy a recipient got from a campaign (ViewMessage). */
  async viewMessage(request: ViewMessageRequestInit, options: CallOptions = {}): Promise<ViewMessageResponse> {
    return this.call(() => this.client.viewMessage(create(ViewMessageRequestSchema, request), this.options(options)), false);
  }

  /** One copy by its key (GetArchivedMessage). */
  async getArchivedMessage(
    request: GetArchivedMessageRequestInit,
    options: CallOptions = {},
  ): Promise<GetArchivedMessageResponse> {
    return this.call(
      () => this.client.getArchivedMessage(create(GetArchivedMessageRequestSchema, request), this.options(options)),
      false,
    );
  }

  /** One page of a recipient's copies (ListArchivedMessages). */
  async listArchivedMessages(
    request: ListArchivedMessagesRequestInit,
    options: CallOptions = {},
  ): Promise<ListArchivedMessagesResponse> {
    return this.call(
      () => this.client.listArchivedMessages(create(ListArchivedMessagesRequestSchema, request), this.options(options)),
      false,
    );
  }

  /** Every copy of a listing, page after page. */
  async *iterArchivedMessages(
    request: ListArchivedMessagesRequestInit,
    options: CallOptions = {},
  ): AsyncGenerator<ArchivedMessageSummary> {
    let pageToken = "";
    do {
      const page = await this.listArchivedMessages({ ...request, pageToken }, options);
      yield* page.messages;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Close the connection; calls in flight fail. */
  close(): void {
    this.sessions.abort();
  }

  private options(options: CallOptions) {
    return {
      timeoutMs: options.timeoutMs ?? this.timeoutMs,
      signal: options.signal,
      headers: { ...this.headers, ...(options.headers ?? {}) },
    };
  }

  private async call<T>(call: () => Promise<T>, archiving: boolean): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw fromConnectError(err, archiving);
    }
  }
}
