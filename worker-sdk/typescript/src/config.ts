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
 * Several engines whose replicas share the shards, each to be polled: a comma-separated list
 * (`h1:7450,h2:7450`, or gRPC's static `ipv4:10.0.0.1:7450,10.0.0.2:7450`), or a name that resolves
 * to every replica (`dns:///cerebelum-replicas.ns.svc:7450`, a headless Service), resolved again as
 * replicas come and go. A worker keeps a poller group per engine; a client's channel to a `dns:`
 * name spreads its calls round robin (any replica forwards a call to the owner).
 */
const SCHEMES = ["dns:", "ipv4:", "ipv6:"];

/** Whether `address` is one gRPC target with a resolver scheme. */
export function isReplicaSet(address: string): boolean {
  return SCHEMES.some((scheme) => address.trim().startsWith(scheme));
}

/** The engines an address names: a `dns:` name as itself (the worker resolves it), else each of a list. */
export function engineAddresses(address: string): string[] {
  let text = address.trim();
  if (text.startsWith("dns:")) {
    return [text];
  }
  for (const scheme of ["ipv4:", "ipv6:"]) {
    if (text.startsWith(scheme)) {
      text = text.slice(scheme.length);
    }
  }
  return [...new Set(text.split(",").map((part) => part.trim()).filter((part) => part !== ""))];
}

/** The host and port of a `dns:[//authority/]host:port` target; undefined for any other address. */
export function dnsTarget(address: string): { host: string; port: number } | undefined {
  if (!address.startsWith("dns:")) {
    return undefined;
  }
  let rest = address.slice("dns:".length);
  if (rest.startsWith("//")) {
    const slash = rest.indexOf("/", 2);
    rest = slash < 0 ? "" : rest.slice(slash + 1);
  }
  const colon = rest.lastIndexOf(":");
  const host = colon > 0 ? rest.slice(0, colon).replace(/^\[|\]$/g, "") : "";
  const port = colon > 0 ? rest.slice(colon + 1) : "";
  if (host === "" || !/^[0-9]+$/.test(port)) {
    throw new Error(`${JSON.stringify(address)}: a dns: target is dns:///HOST:PORT`);
  }
  return { host, port: Number(port) };
}

/** `address`, else `$CEREBELUM_ADDRESS`, else `127.0.0.1:7450`. */
export function resolveAddress(address?: string): string {
  return address || process.env[ADDRESS_ENV] || DEFAULT_ADDRESS;
}

/** `<hostname>-<pid>-<4 random hex digits>`. */
export function defaultWorkerId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(2).toString("hex")}`;
}
