// @msgarchive/client: the msgarchive sidecar's client for Node senders.

export * from "./client.js";
export * from "./errors.js";
export * from "./gen/msgarchive/v1/archive_service_pb.js";
export * from "./gen/msgarchive/v1/error_reason_pb.js";
export { create } from "@bufbuild/protobuf";
