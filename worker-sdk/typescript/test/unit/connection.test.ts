import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";

import { Worker } from "@cerebelum/worker";

import { eventually, FakeWorkerService, makeTask, outputOf, running, testWorker } from "../support/fake-service.js";

let service: FakeWorkerService;
const saved = { ...process.env };

beforeEach(async () => {
  service = await new FakeWorkerService().start();
  for (const name of ["CEREBELUM_ADDRESS", "CEREBELUM_TOKEN", "CEREBELUM_TOKEN_FILE", "CEREBELUM_TLS", "CEREBELUM_TLS_CA"]) {
    delete process.env[name];
  }
});

afterEach(async () => {
  process.env = { ...saved };
  await service.stop();
});

test("the address comes from the option, else CEREBELUM_ADDRESS, else 127.0.0.1:7450", () => {
  assert.equal(new Worker({ taskQueue: "q" }).address, "127.0.0.1:7450");
  process.env["CEREBELUM_ADDRESS"] = "engine:7450";
  assert.equal(new Worker({ taskQueue: "q" }).address, "engine:7450");
  assert.equal(new Worker({ taskQueue: "q", address: "other:1" }).address, "other:1");
  assert.match(new Worker({ taskQueue: "q" }).workerId, /^.+-\d+-[0-9a-f]{4}$/);
});

test("every call carries the bearer token from the option or CEREBELUM_TOKEN", async () => {
  process.env["CEREBELUM_TOKEN"] = "from-env";
  const { worker } = testWorker(service, { token: "s3cret" });
  worker.step("a", () => 1);
  await running(worker, async () => {
    await service.runTask(makeTask("a"));
  });
  assert.equal(service.pollMetadata[0]?.["authorization"], "Bearer s3cret");
  const { worker: second } = testWorker(service);
  second.step("a", () => 1);
  await running(second, async () => {
    await eventually(() => service.pollMetadata.at(-1)?.["authorization"] === "Bearer from-env", 3_000, "a poll");
  });
});

test("a token file is read again when it changes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cerebelum-token-"));
  try {
    const file = join(dir, "token");
    writeFileSync(file, "first-token\n");
    process.env["CEREBELUM_TOKEN_FILE"] = file;
    const { worker } = testWorker(service, { pollWait: 50 });
    worker.step("a", () => 1);
    await running(worker, async () => {
      await eventually(() => service.pollMetadata.at(-1)?.["authorization"] === "Bearer first-token", 3_000, "a poll");
      writeFileSync(file, "second-token-longer\n");
      await eventually(
        () => service.pollMetadata.at(-1)?.["authorization"] === "Bearer second-token-longer",
        3_000,
        "a poll with the rotated token",
      );
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("without a token no authorization header is sent", async () => {
  const { worker } = testWorker(service);
  worker.step("a", () => 1);
  await running(worker, async () => {
    await service.runTask(makeTask("a"));
  });
  assert.equal(service.pollMetadata[0]?.["authorization"], undefined);
});

test("a list names one engine each, with or without gRPC's ipv4: scheme, and a dns: name is kept to resolve", () => {
  const listed = new Worker({ taskQueue: "q", address: "ipv4:10.0.0.1:7450,10.0.0.2:7450" });
  assert.deepEqual(listed.addresses, ["10.0.0.1:7450", "10.0.0.2:7450"]);
  const named = new Worker({ taskQueue: "q", address: "dns:///cerebelum-replicas.ops.svc:7450" });
  assert.deepEqual(named.addresses, ["dns:///cerebelum-replicas.ops.svc:7450"]);
  const plain = new Worker({ taskQueue: "q", address: "a:7450, b:7450,a:7450" });
  assert.deepEqual(plain.addresses, ["a:7450", "b:7450"]);
});

test("a worker given a dns: name resolves it and polls each address, and one given a list polls each engine", async () => {
  const first = await new FakeWorkerService().start(0, "127.0.0.1");
  const port = Number(first.address.split(":").at(-1));
  const second = await new FakeWorkerService().start(port, "127.0.0.2");
  try {
    const named = testWorker(first, { address: `dns:///localhost:${port}` });
    named.worker.step("a", () => ({ ok: true }));
    await running(named.worker, async () => {
      assert.deepEqual(outputOf(await first.runTask(makeTask("a"))), { ok: true });
    });
    const listed = testWorker(first, { address: `ipv4:127.0.0.1:${port},127.0.0.2:${port}` });
    listed.worker.step("a", () => ({ ok: true }));
    await running(listed.worker, async () => {
      assert.deepEqual(outputOf(await second.runTask(makeTask("a", { token: "on-second" }))), { ok: true });
      assert.deepEqual(outputOf(await first.runTask(makeTask("a", { token: "on-first" }))), { ok: true });
    });
  } finally {
    await first.stop();
    await second.stop();
  }
});
