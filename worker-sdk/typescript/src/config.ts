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

/**
 * A gRPC target with a resolver scheme (`dns:///cerebelum-replicas.ns.svc:7450`, or a static
 * `ipv4:10.0.0.1:7450,10.0.0.2:7450`) names every replica of an engine whose replicas share the
 * shards: one channel, a connection to each address it resolves to, calls spread round robin.
 */
const SCHEMES = ["dns:", "ipv4:", "ipv6:"];

/** Whether `address` is one gRPC target with a resolver scheme (every replica behind it). */
export function isReplicaSet(address: string): boolean {
  return SCHEMES.some((scheme) => address.trim().startsWith(scheme));
}

/** The engines an address names: a resolver target as one, else each of a comma-separated list. */
export function engineAddresses(address: string): string[] {
  if (isReplicaSet(address)) {
    return [address.trim()];
  }
  return [...new Set(address.split(",").map((part) => part.trim()).filter((part) => part !== ""))];
}

/** `address`, else `$CEREBELUM_ADDRESS`, else `127.0.0.1:7450`. */
export function resolveAddress(address?: string): string {
  return address || process.env[ADDRESS_ENV] || DEFAULT_ADDRESS;
}

/** `<hostname>-<pid>-<4 random hex digits>`. */
export function defaultWorkerId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(2).toString("hex")}`;
}
