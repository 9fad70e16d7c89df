// The typed errors of the msgarchive client: one class per ErrorInfo reason the
// sidecar sends (protos/msgarchive/v1/error_reason.proto), as in the Python
// client (client/msgarchive/errors.py). A caller never sees a raw gRPC error.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import type { ArchiveError } from "./gen/msgarchive/v1/archive_service_pb.js";

/** One field a bad request got wrong, as google.rpc.BadRequest names it. */
export interface BadField {
  field: string;
  description: string;
}

/** A call to the sidecar failed; the message was not archived. */
export class MsgArchiveError extends Error {
  /** The gRPC status code, by name: "UNAVAILABLE", "INVALID_ARGUMENT", ... */
  readonly code: string;
  /** The ErrorInfo reason ("FAILED_TO_ARCHIVE", ...); "" when the sidecar gave none. */
  readonly reason: string;
  /** The ErrorInfo metadata: `store_error`, `attempts`, `key`, ... */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every field the request got wrong (google.rpc.BadRequest). */
  readonly fieldViolations: readonly BadField[];
  /** How long the sidecar asks to wait before trying again (RetryInfo), if it said. */
  readonly retryDelayMs: number | undefined;

  constructor(
    message: string,
    options: {
      code: string;
      reason?: string;
      metadata?: Record<string, string>;
      fieldViolations?: BadField[];
      retryDelayMs?: number;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.reason = options.reason ?? "";
    this.metadata = Object.freeze({ ...(options.metadata ?? {}) });
    this.fieldViolations = Object.freeze([...(options.fieldViolations ?? [])]);
    this.retryDelayMs = options.retryDelayMs;
  }

  override toString(): string {
    const reason = this.reason ? ` ${this.reason}` : "";
    return `${this.name}: ${this.code}${reason}: ${this.message}`;
  }
}

/** INVALID_ARGUMENT: the request is malformed; `fieldViolations` names each field. */
export class InvalidArgument extends MsgArchiveError {}
/** INVALID_MESSAGE: the message to archive is malformed. Nothing was written. */
export class InvalidMessage extends InvalidArgument {}
/** INVALID_LOOKUP: a read request is malformed. */
export class InvalidLookup extends InvalidArgument {}
/** UNAVAILABLE. */
export class Unavailable extends MsgArchiveError {}
/**
 * FAILED_TO_ARCHIVE: the copy was not stored. **Do not send the message**; mark
 * it "Failed to Archive Message", or archive it again (the same key: safe).
 */
export class ArchiveFailed extends Unavailable {
  /** How many store attempts the sidecar made, if it said. */
  get attempts(): number | undefined {
    const attempts = this.metadata["attempts"];
    return attempts === undefined ? undefined : Number(attempts);
  }
}
/** JOURNAL_FULL: the manifest journal's disk is full; nothing was written. */
export class JournalFull extends ArchiveFailed {}
/** STREAM_IDLE: a stream sent nothing for too long and was closed. */
export class StreamIdle extends Unavailable {}
/** STORE_UNAVAILABLE: the store did not answer a read. Safe to retry. */
export class StoreUnavailable extends Unavailable {}
/** ARCHIVE_UNAVAILABLE: archiving cannot work now (credentials, bucket); fails fast. */
export class ArchiveUnavailable extends MsgArchiveError {}
/** RESOURCE_EXHAUSTED. */
export class ResourceExhausted extends MsgArchiveError {}
/** RATE_LIMITED: over the account's read rate; see `retryDelayMs`. */
export class RateLimited extends ResourceExhausted {}
/** OVERLOADED: the sidecar is serving all it takes; see `retryDelayMs`. */
export class Overloaded extends ResourceExhausted {}
/** DEADLINE_EXCEEDED: the call's deadline passed. */
export class DeadlineExceeded extends MsgArchiveError {}
/** DEADLINE_TOO_SHORT: no store attempt could finish in time; none was made. */
export class DeadlineTooShort extends DeadlineExceeded {}
/** UNAUTHENTICATED. */
export class Unauthenticated extends MsgArchiveError {}
/** CREDENTIALS_MISSING: no API key, or one not recognised. */
export class CredentialsMissing extends Unauthenticated {}
/** PERMISSION_DENIED. */
export class PermissionDenied extends MsgArchiveError {}
/** WRONG_ACCOUNT: the credentials belong to another account. */
export class WrongAccount extends PermissionDenied {}
/** NOT_FOUND. */
export class NotFound extends MsgArchiveError {}
/** COPY_NOT_FOUND: no copy matches. */
export class CopyNotFound extends NotFound {}
/** DATA_LOSS. */
export class DataLoss extends MsgArchiveError {}
/** COPY_DAMAGED: a stored copy does not decompress, parse, or match its key. */
export class CopyDamaged extends DataLoss {}
/** INTERNAL: a fault in the sidecar; the copy may not be stored. Do not send. */
export class InternalError extends MsgArchiveError {}

type ErrorClass = new (
  message: string,
  options: ConstructorParameters<typeof MsgArchiveError>[1],
) => MsgArchiveError;

/** The typed error of each ErrorReason the sidecar sends. */
export const ERROR_CLASSES: Readonly<Record<string, ErrorClass>> = {
  INVALID_MESSAGE: InvalidMessage,
  FAILED_TO_ARCHIVE: ArchiveFailed,
  ARCHIVE_UNAVAILABLE: ArchiveUnavailable,
  INTERNAL_ERROR: InternalError,
  DEADLINE_TOO_SHORT: DeadlineTooShort,
  INVALID_LOOKUP: InvalidLookup,
  COPY_NOT_FOUND: CopyNotFound,
  COPY_DAMAGED: CopyDamaged,
  CREDENTIALS_MISSING: CredentialsMissing,
  WRONG_ACCOUNT: WrongAccount,
  RATE_LIMITED: RateLimited,
  STORE_UNAVAILABLE: StoreUnavailable,
  OVERLOADED: Overloaded,
  JOURNAL_FULL: JournalFull,
  STREAM_IDLE: StreamIdle,
};

// Errors without a msgarchive reason (the sidecar was not reached, the call
// timed out in transit), by status code.
const BY_CODE: Readonly<Record<string, ErrorClass>> = {
  INVALID_ARGUMENT: InvalidArgument,
  UNAVAILABLE: Unavailable,
  FAILED_PRECONDITION: ArchiveUnavailable,
  RESOURCE_EXHAUSTED: ResourceExhausted,
  DEADLINE_EXCEEDED: DeadlineExceeded,
  UNAUTHENTICATED: Unauthenticated,
  PERMISSION_DENIED: PermissionDenied,
  NOT_FOUND: NotFound,
  DATA_LOSS: DataLoss,
  INTERNAL: InternalError,
};

// Codes of a call the sidecar never answered: the connection failed or was
// refused (Node's HTTP/2 reports a TLS refusal as a cancelled stream).
const UNANSWERED = new Set(["UNAVAILABLE", "CANCELED", "UNKNOWN"]);

/**
 * The typed error for a status: by its reason, else by its code. An archive
 * call that failed without a reason (the sidecar was unreachable, or refused
 * the connection) is `ArchiveFailed`: no ack, so the message must not be
 * sent, and archiving it again is safe.
 */
export function errorClass(code: string, reason: string, archiving: boolean): ErrorClass {
  if (archiving && !reason && UNANSWERED.has(code)) {
    return ArchiveFailed;
  }
  return ERROR_CLASSES[reason] ?? BY_CODE[code] ?? MsgArchiveError;
}

/** gRPC's name of a Connect code: Code.Unavailable is "UNAVAILABLE". */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The typed error for a failed call, with its google.rpc details read. */
export function fromConnectError(err: unknown, archiving: boolean): MsgArchiveError {
  if (err instanceof MsgArchiveError) {
    return err;
  }
  const failed = ConnectError.from(err);
  const code = codeName(failed.code);
  const info = failed.findDetails(ErrorInfoSchema)[0];
  const violations = failed
    .findDetails(BadRequestSchema)
    .flatMap((bad) => bad.fieldViolations)
    .map((v) => ({ field: v.field, description: v.description }));
  const retry = failed.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const retryDelayMs =
    retry === undefined ? undefined : Number(retry.seconds) * 1000 + retry.nanos / 1e6;
  const reason = info?.reason ?? "";
  const Kind = errorClass(code, reason, archiving);
  return new Kind(failed.rawMessage || code, {
    code,
    reason,
    metadata: { ...(info?.metadata ?? {}) },
    fieldViolations: violations,
    retryDelayMs,
    cause: err,
  });
}

/** The typed error for one message's error on an ArchiveStream. */
export function fromArchiveError(error: ArchiveError): MsgArchiveError {
  const Kind = errorClass(error.code, error.reason, true);
  return new Kind(error.message || error.code, {
    code: error.code,
    reason: error.reason,
    metadata: { ...error.metadata },
    fieldViolations: error.fieldViolations.map((v) => ({
      field: v.field,
      description: v.description,
    })),
    retryDelayMs: error.retryDelayMs ? Number(error.retryDelayMs) : undefined,
  });
}
