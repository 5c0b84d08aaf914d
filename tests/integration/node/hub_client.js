// The official SignalR client (@microsoft/signalr) subscribing to one topic of the market hub.
//
//   node hub_client.js BASE_URL TOPIC UPDATES [--msgpack] [--api-key KEY] [--skip-negotiation]
//
// Negotiates (version 1) unless told not to, connects over WebSockets, invokes
// Subscribe(TOPIC), waits for UPDATES `update` messages of that topic, then prints one JSON
// line: {"connectionId", "protocol", "snapshot": {topic, seq, rows, underlying}, "updates": [...]}.
// Exits 1 with the error on stderr if anything fails or the updates do not come in 60 s.
"use strict";

const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");

async function main() {
  const [baseUrl, topic, wanted, ...flags] = process.argv.slice(2);
  const count = Number(wanted);
  const msgpack = flags.includes("--msgpack");
  const skipNegotiation = flags.includes("--skip-negotiation");
  const keyAt = flags.indexOf("--api-key");
  const apiKey = keyAt >= 0 ? flags[keyAt + 1] : null;

  let builder = new signalR.HubConnectionBuilder()
    .withUrl(`${baseUrl}/hubs/market`, {
      transport: signalR.HttpTransportType.WebSockets,
      skipNegotiation,
      accessTokenFactory: apiKey ? () => apiKey : undefined,
    })
    .configureLogging(signalR.LogLevel.Warning);
  if (msgpack) builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();

  const updates = [];
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  connection.on("update", (message) => {
    if (message.topic !== topic) return;
    updates.push({
      topic: message.topic,
      seq: Number(message.seq),
      rows: message.rows.length,
      spot: message.underlying ? message.underlying.spot : null,
      received_ms: Date.now(),
    });
    if (updates.length >= count) done();
  });
  connection.onclose((error) => {
    if (error) {
      process.stderr.write(`connection closed: ${error}\n`);
      process.exit(1);
    }
  });

  await connection.start();
  const snapshot = await connection.invoke("Subscribe", topic);
  const timer = setTimeout(() => {
    process.stderr.write(`only ${updates.length} of ${count} updates in 60 s\n`);
    process.exit(1);
  }, 60000);
  await finished;
  clearTimeout(timer);
  const result = {
    connectionId: connection.connectionId,
    protocol: msgpack ? "messagepack" : "json",
    snapshot: {
      topic: snapshot.topic,
      seq: Number(snapshot.seq),
      rows: snapshot.rows.length,
      first: snapshot.rows[0] || null,
      underlying: snapshot.underlying || null,
    },
    updates,
  };
  await connection.stop();
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
