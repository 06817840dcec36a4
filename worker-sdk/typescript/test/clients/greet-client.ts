import { Client } from "@cerebelum/worker";

const client = new Client(); // $CEREBELUM_ADDRESS, $CEREBELUM_TOKEN and TLS, as for a Worker
try {
  const execution = await client.startExecution("greet", { lang: "en" });
  // Queued until the signal step that waits for "name" takes it, even if it does not wait yet.
  await client.signal(execution.id, "name", { first: "Ann" }, { requestId: `name-${execution.id}` });
  const done = await client.waitExecution(execution.id, { timeout: "1m" });
  console.log(done.phase, JSON.stringify(done.output));

  // Start greet-bob unless it exists, then signal it: one call, no race with another sender.
  const bob = await client.signalWithStart({ workflow: "greet", executionId: "greet-bob", signal: "name", data: "Bob" });
  const greeted = await client.waitExecution(bob.id, { timeout: "1m" });
  console.log(greeted.id, greeted.phase, JSON.stringify(greeted.output), greeted.run);
} finally {
  client.close();
}
