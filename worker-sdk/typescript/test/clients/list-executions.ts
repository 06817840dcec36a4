import { Client, type Execution } from "@cerebelum/worker";

const ids = (executions: readonly Execution[]) => executions.map((execution) => execution.id).join(",");

const client = new Client(); // $CEREBELUM_ADDRESS, $CEREBELUM_TOKEN and TLS, as for a Worker
try {
  // Seven orders of two customers, labelled when they start; each waits for its "name" signal.
  for (let n = 1; n <= 7; n += 1) {
    const labels = { customer: n % 2 === 1 ? "acme" : "globex", team: "sales" };
    await client.startExecution("greet", { order: n }, { executionId: `order-${n}`, labels });
  }
  await client.cancel("order-3", { reason: "a duplicate" });

  // A page at a time, newest first: pass nextPageToken back, with the same filters, for the next.
  const acme = { labels: { customer: "acme" }, limit: 3 };
  const first = await client.listExecutionsPage(acme);
  const second = await client.listExecutionsPage({ ...acme, pageToken: first.nextPageToken });
  console.log(ids(first.executions), "|", ids(second.executions), second.nextPageToken);

  // Or every match, fetched 2 a page as the loop goes on; each execution carries its labels.
  for await (const execution of client.listExecutions({ workflow: "greet", labels: { team: "sales" }, limit: 2 })) {
    console.log(execution.id, execution.labels.customer);
  }

  // In any of some phases, with text in the id (ASCII case ignored), created at or after / before a time.
  const since = (await client.getExecution("order-5")).createdAt ?? new Date(0);
  console.log(ids((await client.listExecutionsPage({ phases: ["Cancelled", "Failed"] })).executions));
  console.log(ids((await client.listExecutionsPage({ idContains: "DER-6" })).executions));
  console.log(ids((await client.listExecutionsPage({ createdAfter: since })).executions));
  console.log(ids((await client.listExecutionsPage({ createdBefore: since })).executions));
} finally {
  client.close();
}
