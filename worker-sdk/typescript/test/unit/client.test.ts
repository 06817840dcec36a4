import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import { CerebelumError, Client, TERMINAL_PHASES, WaitTimeoutError } from "@cerebelum/worker";
import {
  ExecutionInfo,
  type GetExecutionRequest,
  type ListExecutionsRequest,
  type SignalExecutionRequest,
  type SignalWithStartRequest,
  type StartExecutionRequest,
  type WaitExecutionRequest,
} from "@cerebelum/worker/proto/workflow";

import { FakeWorkflowService } from "../support/fake-workflow-service.js";

let service: FakeWorkflowService;
let client: Client;
const saved = { ...process.env };

beforeEach(async () => {
  for (const name of ["CEREBELUM_ADDRESS", "CEREBELUM_TOKEN", "CEREBELUM_TOKEN_FILE", "CEREBELUM_TLS", "CEREBELUM_TLS_CA"]) {
    delete process.env[name];
  }
  service = await new FakeWorkflowService().start();
  client = new Client({ address: service.address, token: "t0k" });
});

afterEach(async () => {
  client.close();
  await service.stop();
  process.env = { ...saved };
});

/** A second run of a chain, started as a child, with signals queued and a step waiting for one. */
function childRun(): ExecutionInfo {
  return ExecutionInfo.fromPartial({
    id: "order-7-run-2",
    workflow: "orders",
    phase: "WaitingForSignal",
    inputJson: '{"id": 7}',
    createdAt: new Date(1_700_000_000_000),
    queuedSignals: [
      { name: "paid", dataJson: '{"amount": 12}', sender: "alice", receivedAt: new Date(1_700_000_000_250) },
      { name: "note", dataJson: "", sender: "system:serviceaccount:shop:bot" },
    ],
    signalWaits: [
      { step: "await_shipping", name: "shipped", timeoutAt: new Date(1_700_003_600_000) },
      { step: "await_cancel", name: "cancel" },
    ],
    parentId: "batch-1",
    parentStep: "each_order",
    children: [
      { step: "invoice", id: "inv-7", workflow: "invoicing", phase: "Succeeded" },
      { step: "ship", id: "ship-7", workflow: "shipping", phase: "Running" },
    ],
    continuedFrom: "order-7",
    firstRunId: "order-7",
    run: 2,
  });
}

test("an execution carries its queued signals in order, with data parsed and times as Dates", async () => {
  service.executions.set("order-7-run-2", childRun());

  const execution = await client.getExecution("order-7-run-2");

  assert.deepEqual(execution.queuedSignals, [
    { name: "paid", data: { amount: 12 }, sender: "alice", receivedAt: new Date(1_700_000_000_250) },
    { name: "note", data: null, sender: "system:serviceaccount:shop:bot", receivedAt: null },
  ]);
  assert.deepEqual(execution.signalWaits, [
    { step: "await_shipping", name: "shipped", timeoutAt: new Date(1_700_003_600_000) },
    { step: "await_cancel", name: "cancel", timeoutAt: null },
  ]);
  assert.equal(execution.phase, "WaitingForSignal");
  assert.equal(execution.isTerminal, false);
  assert.deepEqual(execution.input, { id: 7 });
  assert.deepEqual(execution.createdAt, new Date(1_700_000_000_000));
});

test("an execution names its parent, its children and its place in a continue-as-new chain", async () => {
  service.executions.set("order-7-run-2", childRun());

  const execution = await client.getExecution("order-7-run-2");

  assert.deepEqual([execution.parentId, execution.parentStep], ["batch-1", "each_order"]);
  assert.deepEqual(execution.children, [
    { step: "invoice", id: "inv-7", workflow: "invoicing", phase: "Succeeded" },
    { step: "ship", id: "ship-7", workflow: "shipping", phase: "Running" },
  ]);
  assert.deepEqual(
    [execution.continuedFrom, execution.continuedAs, execution.firstRunId, execution.run],
    ["order-7", null, "order-7", 2],
  );
});

test("an execution from an engine before signals is a top-level first run, its times from the milliseconds", async () => {
  service.executions.set(
    "old",
    ExecutionInfo.fromPartial({ id: "old", phase: "Succeeded", createdAtMs: 1_700_000_000_000, outputJson: "[1]" }),
  );

  const execution = await client.getExecution("old");

  assert.deepEqual(execution.createdAt, new Date(1_700_000_000_000));
  assert.equal(execution.updatedAt, null);
  assert.deepEqual([execution.firstRunId, execution.run, execution.parentId, execution.continuedFrom], ["old", 1, null, null]);
  assert.deepEqual([execution.queuedSignals, execution.signalWaits, execution.children], [[], [], []]);
  assert.deepEqual([execution.output, execution.isTerminal], [[1], true]);
});

test("a run that continued as new is terminal", () => {
  assert.ok(TERMINAL_PHASES.has("ContinuedAsNew"));
  assert.ok(!TERMINAL_PHASES.has("WaitingForSignal"));
});

test("signal sends the name, the data as JSON and the request id, with the bearer token", async () => {
  service.executions.set("ex-1", ExecutionInfo.fromPartial({ id: "ex-1", phase: "Running" }));

  const execution = await client.signal("ex-1", "paid", { amount: 12, ids: [1, 2] }, { requestId: "pay-1" });
  await client.signal("ex-1", "ping");

  const [first, second] = service.sent<SignalExecutionRequest>("signalExecution");
  assert.deepEqual(first, { id: "ex-1", name: "paid", dataJson: '{"amount":12,"ids":[1,2]}', requestId: "pay-1" });
  assert.deepEqual(second, { id: "ex-1", name: "ping", dataJson: "", requestId: "" });
  assert.deepEqual(
    execution.queuedSignals.map((s) => [s.name, s.data, s.receivedAt]),
    [["paid", { amount: 12, ids: [1, 2] }, new Date(1_700_000_002_000)]],
  );
  assert.equal(service.requests[0]?.metadata["authorization"], "Bearer t0k");
});

test("signal refuses data JSON cannot hold before sending anything", async () => {
  service.executions.set("ex-1", ExecutionInfo.fromPartial({ id: "ex-1", phase: "Running" }));

  await assert.rejects(client.signal("ex-1", "paid", { amount: Number.NaN }), /NaN is not a JSON number/);
  assert.deepEqual(service.requests, []);
});

test("signalWithStart sends the workflow, the id, the input, the signal and its data", async () => {
  const execution = await client.signalWithStart({
    workflow: "orders",
    executionId: "order-9",
    input: { id: 9 },
    signal: "paid",
    data: [12],
    requestId: "r-9",
    labels: { team: "billing" },
  });
  await client.signalWithStart({ workflow: "orders", executionId: "order-10", signal: "paid" });

  const [first, second] = service.sent<SignalWithStartRequest>("signalWithStart");
  assert.deepEqual(first, {
    workflow: "orders",
    executionId: "order-9",
    inputJson: '{"id":9}',
    name: "paid",
    dataJson: "[12]",
    requestId: "r-9",
    labels: { team: "billing" },
  });
  assert.deepEqual([second?.inputJson, second?.dataJson, second?.requestId, second?.labels], ["", "", "", {}]);
  assert.deepEqual([execution.id, execution.input, execution.queuedSignals.map((s) => s.name)], ["order-9", { id: 9 }, ["paid"]]);
});

test("startExecution sends the input as JSON and the execution id", async () => {
  const execution = await client.startExecution("orders", { id: "o-2" }, { executionId: "ex-2" });
  await client.startExecution("orders");

  const [first, second] = service.sent<StartExecutionRequest>("startExecution");
  assert.deepEqual(first, { workflow: "orders", inputJson: '{"id":"o-2"}', executionId: "ex-2", labels: {} });
  assert.deepEqual([second?.inputJson, second?.executionId], ["", ""]);
  assert.deepEqual([execution.id, execution.phase, execution.input], ["ex-2", "Pending", { id: "o-2" }]);
});

test("listExecutionsPage sends every filter, its times as Timestamps, and reads labels and the next token", async () => {
  service.executions.set("order-1", ExecutionInfo.fromPartial({ id: "order-1", workflow: "orders", phase: "Running", labels: { customer: "acme" } }));
  const after = new Date(1_700_000_000_123);
  const before = new Date(1_700_000_900_000);

  const page = await client.listExecutionsPage({
    workflow: "orders",
    phases: ["Running", "Failed", "Running"],
    labels: { customer: "acme" },
    createdAfter: after,
    createdBefore: before,
    idContains: "ORDER",
    limit: 1,
  });

  const [request] = service.sent<ListExecutionsRequest>("listExecutions");
  assert.deepEqual(request, {
    workflow: "orders",
    phase: "",
    limit: 1,
    labels: { customer: "acme" },
    phases: ["Running", "Failed"],
    createdAfter: after,
    createdBefore: before,
    idContains: "ORDER",
    pageToken: "",
  });
  assert.deepEqual(page.executions.map((e) => [e.id, e.labels]), [["order-1", { customer: "acme" }]]);
  assert.equal(page.nextPageToken, null);
});

test("listExecutionsPage sends one phase in the field older engines read, and nothing for filters not given", async () => {
  await client.listExecutionsPage({ phases: ["Failed"], pageToken: "7" });
  await client.listExecutionsPage();

  const [one, none] = service.sent<ListExecutionsRequest>("listExecutions");
  assert.deepEqual([one?.phase, one?.phases, one?.pageToken], ["Failed", [], "7"]);
  assert.deepEqual(none, {
    workflow: "",
    phase: "",
    limit: 100,
    labels: {},
    phases: [],
    createdAfter: undefined,
    createdBefore: undefined,
    idContains: "",
    pageToken: "",
  });
});

test("listExecutionsPage refuses an invalid Date or limit before sending anything", async () => {
  await assert.rejects(client.listExecutionsPage({ createdAfter: new Date("not a date") }), TypeError);
  await assert.rejects(client.listExecutionsPage({ limit: 2.5 }), TypeError);
  await assert.rejects(client.listExecutionsPage({ limit: -1 }), TypeError);
  assert.deepEqual(service.sent("listExecutions"), []);
});

test("listExecutions follows the pages with the same filters, and fetches no more once the loop stops", async () => {
  for (let n = 1; n <= 5; n += 1) {
    await client.startExecution("orders", { n }, { executionId: `order-${n}`, labels: { team: n === 3 ? "ops" : "sales" } });
  }

  const listed = [];
  for await (const execution of client.listExecutions({ workflow: "orders", labels: { team: "sales" }, limit: 2 })) {
    listed.push([execution.id, execution.labels.team]);
  }

  assert.deepEqual(listed, [["order-1", "sales"], ["order-2", "sales"], ["order-4", "sales"], ["order-5", "sales"]]);
  const requests = service.sent<ListExecutionsRequest>("listExecutions");
  assert.deepEqual(requests.map((r) => [r.pageToken, r.workflow, r.labels, r.limit]), [
    ["", "orders", { team: "sales" }, 2],
    ["2", "orders", { team: "sales" }, 2],
  ]);

  for await (const execution of client.listExecutions({ limit: 2 })) {
    assert.equal(execution.id, "order-1");
    break;
  }
  assert.equal(service.sent("listExecutions").length, 3);
});

test("an error of the engine rejects with a CerebelumError carrying its code and message", async () => {
  const error = await client.signal("nope", "paid").then(
    () => assert.fail("signalling a missing execution succeeded"),
    (caught: unknown) => caught,
  );

  assert.ok(error instanceof CerebelumError);
  assert.deepEqual([error.code, error.message, error.name], ["NotFound", "execution 'nope' not found", "CerebelumError"]);
});

test("an unreachable engine rejects with Unavailable", async () => {
  const stopped = new Client({ address: "127.0.0.1:1", timeout: "5s" });
  try {
    await assert.rejects(stopped.getExecution("ex-1"), (error: unknown) => {
      assert.ok(error instanceof CerebelumError);
      assert.equal(error.code, "Unavailable");
      return true;
    });
  } finally {
    stopped.close();
  }
});

test("waitExecution asks again until the execution is terminal", async () => {
  const running = ExecutionInfo.fromPartial({ id: "ex-1", phase: "WaitingForSignal" });
  service.executions.set("ex-1", running);
  service.waitReplies = [running, running, ExecutionInfo.fromPartial({ id: "ex-1", phase: "Succeeded", outputJson: '"done"' })];

  const execution = await client.waitExecution("ex-1");

  assert.deepEqual([execution.phase, execution.output], ["Succeeded", "done"]);
  assert.deepEqual(
    service.sent<WaitExecutionRequest>("waitExecution").map((r) => [r.waitMs, r.followRuns]),
    [
      [30_000, false],
      [30_000, false],
      [30_000, false],
    ],
  );
});

test("waitExecution returns a run that continued as new unless told to follow the chain", async () => {
  const continued = ExecutionInfo.fromPartial({ id: "order-7", phase: "ContinuedAsNew", continuedAs: "order-7-run-2" });
  const last = ExecutionInfo.fromPartial({ id: "order-7-run-2", phase: "Succeeded", firstRunId: "order-7", run: 2 });
  service.waitReplies = [continued, continued, last];

  const endedRun = await client.waitExecution("order-7");
  const chainEnd = await client.waitExecution("order-7", { followRuns: true });

  assert.deepEqual([endedRun.phase, endedRun.continuedAs, endedRun.isTerminal], ["ContinuedAsNew", "order-7-run-2", true]);
  assert.deepEqual([chainEnd.id, chainEnd.phase, chainEnd.run], ["order-7-run-2", "Succeeded", 2]);
  assert.deepEqual(
    service.sent<WaitExecutionRequest>("waitExecution").map((r) => [r.id, r.followRuns]),
    [
      ["order-7", false],
      ["order-7", true],
      ["order-7", true],
    ],
  );
});

test("getExecution asks for the latest run of a chain only when told", async () => {
  service.executions.set("order-7", ExecutionInfo.fromPartial({ id: "order-7", phase: "ContinuedAsNew" }));

  await client.getExecution("order-7");
  await client.getExecution("order-7", { latestRun: true });

  assert.deepEqual(
    service.sent<GetExecutionRequest>("getExecution").map((r) => r.latestRun),
    [false, true],
  );
});

test("waitExecution rejects with WaitTimeoutError when the execution does not end in time", async () => {
  service.executions.set("ex-1", ExecutionInfo.fromPartial({ id: "ex-1", phase: "WaitingForSignal" }));

  const error = await client.waitExecution("ex-1", { timeout: 200 }).then(
    () => assert.fail("the wait resolved"),
    (caught: unknown) => caught,
  );

  assert.ok(error instanceof WaitTimeoutError);
  assert.equal(error.execution.phase, "WaitingForSignal");
  assert.match(error.message, /still WaitingForSignal after 200 ms/);
  const waits = service.sent<WaitExecutionRequest>("waitExecution");
  assert.ok(waits.length >= 1 && waits.every((r) => r.waitMs <= 200), JSON.stringify(waits));
});

test("approve and cancel send what they are given", async () => {
  service.executions.set("ex-1", ExecutionInfo.fromPartial({ id: "ex-1", phase: "WaitingForApproval" }));

  await client.approve("ex-1", "gate", { approver: "ana", payload: { ok: true } });
  const cancelled = await client.cancel("ex-1", { reason: "changed my mind" });

  assert.deepEqual(service.sent("approve"), [{ id: "ex-1", step: "gate", approver: "ana", payloadJson: '{"ok":true}' }]);
  assert.deepEqual(service.sent("cancelExecution"), [{ id: "ex-1", reason: "changed my mind" }]);
  assert.equal(cancelled.phase, "Cancelled");
});

test("pause and resume send the id and reason and read the pauses back", async () => {
  service.executions.set("ex-1", ExecutionInfo.fromPartial({ id: "ex-1", phase: "Running" }));

  const paused = await client.pause("ex-1", { reason: "maintenance" });
  assert.equal(paused.phase, "Paused");
  assert.deepEqual(
    paused.pauses.map((p) => [p.source, p.reason, p.at?.toISOString()]),
    [["user", "maintenance", "2023-11-14T22:13:23.000Z"]],
  );
  const resumed = await client.resume("ex-1");

  assert.deepEqual(service.sent("pauseExecution"), [{ id: "ex-1", reason: "maintenance" }]);
  assert.deepEqual(service.sent("resumeExecution"), [{ id: "ex-1" }]);
  assert.deepEqual([resumed.phase, resumed.pauses, resumed.resetFrom], ["Running", [], null]);
});

test("the address comes from the option, else CEREBELUM_ADDRESS, else 127.0.0.1:7450", () => {
  const clients = [new Client()];
  process.env["CEREBELUM_ADDRESS"] = "engine:7450";
  clients.push(new Client(), new Client({ address: "other:1" }));
  try {
    assert.deepEqual(
      clients.map((c) => c.address),
      ["127.0.0.1:7450", "engine:7450", "other:1"],
    );
  } finally {
    clients.forEach((c) => c.close());
  }
});
