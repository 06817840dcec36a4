/** Connection settings shared by the worker, with their environment defaults. */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

export const ADDRESS_ENV = "CEREBELUM_ADDRESS";
export const DEFAULT_ADDRESS = "127.0.0.1:7450";

/**
 * Options for every channel the SDK opens: reconnect quickly after an outage (gRPC's default
 * backoff grows to two minutes); allow large payloads and let the server decide what is too large.
 */
export const CHANNEL_OPTIONS: Readonly<Record<string, number>> = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 5_000,
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc.max_send_message_length": 64 * 1024 * 1024,
};

/** `address`, else `$CEREBELUM_ADDRESS`, else `127.0.0.1:7450`. */
export function resolveAddress(address?: string): string {
  return address || process.env[ADDRESS_ENV] || DEFAULT_ADDRESS;
}

/** `<hostname>-<pid>-<4 random hex digits>`. */
export function defaultWorkerId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(2).toString("hex")}`;
}
