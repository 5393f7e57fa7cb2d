// What a web app does with ringback, end to end against a running API (ringback-local in the tests):
// place a simulated call with an idempotency key and a callback URL, follow it with ETag polling
// until it settles, find it in the listing, and verify the event pushed to the callback.
//
//   RINGBACK_URL=http://127.0.0.1:3000 RINGBACK_TOKEN=dev-api-token \
//   RINGBACK_SIGNING_SECRET=whsec_… npm run example
//
// Exits non-zero, saying why, on anything a user would notice.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { RingbackClient, verifyEvent, type CallEvent } from "./index.js";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

function fail(why: string): never {
  console.error(`example failed: ${why}`);
  process.exit(1);
}

// A receiver for the pushed event, on loopback (the local runner accepts loopback callbacks).
const events: CallEvent[] = [];
let eventArrived: () => void = () => {};
const arrived = new Promise<void>((resolve) => (eventArrived = resolve));
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    try {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      events.push(verifyEvent(env("RINGBACK_SIGNING_SECRET"), body, headers));
      res.writeHead(204).end();
      eventArrived();
    } catch (e) {
      res.writeHead(401).end();
      fail(`a pushed event did not verify: ${e}`);
    }
  });
});
await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/ringback-events`;

const client = new RingbackClient({ baseUrl: env("RINGBACK_URL"), token: env("RINGBACK_TOKEN") });
const serviceRequestId = crypto.randomUUID();
const request = {
  providerName: "Bayside Plumbing [answered]",
  providerPhone: "+14155550123",
  serviceNeeded: "plumber",
  userCriteria: "licensed, can come this week",
  location: "Oakland, CA",
  urgency: "within_2_days" as const,
  serviceRequestId,
  callbackUrl,
};

const key = crypto.randomUUID();
const placed = await client.placeCall(request, key);
console.log(`placed ${placed.callId} (${placed.status}, ${placed.dataStatus})`);
const again = await client.placeCall(request, key);
if (again.callId !== placed.callId) fail(`the same idempotency key placed a second call ${again.callId}`);

const seen: string[] = [];
const settled = await client.waitUntilSettled(placed.callId, {
  onChange: (c) => seen.push(`${c.callStatus}/${c.dataStatus}`),
});
console.log(`followed: ${seen.join(" -> ")}`);
console.log(`settled: ${settled.status}, ${settled.duration?.toFixed(2)} min, summary: ${settled.analysis.summary ?? "(none)"}`);
if (settled.dataStatus !== "complete") fail(`the call settled ${settled.dataStatus}`);

const listed = [];
for await (const c of client.allCalls({ serviceRequestId })) listed.push(c);
if (listed.length !== 1 || listed[0]?.callId !== placed.callId) fail(`the listing shows ${JSON.stringify(listed)}`);
console.log(`listed by serviceRequestId: ${listed.length} call`);

const timeout = setTimeout(() => fail("no event was pushed within 30 s"), 30_000);
await arrived;
clearTimeout(timeout);
const event = events[0]!;
if (event.type !== "call.completed" || event.data.callId !== placed.callId) fail(`pushed ${event.type} for ${event.data.callId}`);
console.log(`pushed and verified: ${event.type} ${event.id}`);
receiver.close();
