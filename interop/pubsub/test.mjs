// Runs the third-party `salesforce-pubsub-api-client` (npm) against the pgforce emulator's
// Pub/Sub API: subscribes to Account change events, makes REST changes, and checks the
// decoded events (change types, field names from bitmaps, values), a keepalive, and the
// error for an expired replay id. Exits non-zero on the first failure.
//
// Environment (set by run.sh): PGFORCE_LOGIN_URL (HTTPS base), PGFORCE_CONTROL_URL,
// PGFORCE_PUBSUB (host:port), PGFORCE_CA (the emulator's CA file), PGFORCE_PROTO (pgforce's
// own pubsub.proto); NODE_EXTRA_CA_CERTS trusts the emulator's CA for REST.
//
// A second part calls GetTopic and GetSchema with plain grpc-js, generated from pgforce's
// own .proto, over TLS verified against the emulator's CA.
import assert from "node:assert/strict";
import fs from "node:fs";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import PubSubApiClient from "salesforce-pubsub-api-client";

const loginUrl = process.env.PGFORCE_LOGIN_URL;
const controlUrl = process.env.PGFORCE_CONTROL_URL;
const endpoint = process.env.PGFORCE_PUBSUB;
const REPLAY_ID_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";

// The whole run must finish in time, whatever hangs.
setTimeout(() => {
  console.error("error: the Pub/Sub interop run did not finish within 120 s");
  process.exit(1);
}, 120000).unref();

const quiet = {
  debug() {},
  info() {},
  warn: (...args) => console.warn(...args),
  error() {},
};

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function control(method, path, body) {
  const response = await fetch(`${controlUrl}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(response.ok, `control ${path}: HTTP ${response.status}`);
}

async function login() {
  const form = new URLSearchParams({
    grant_type: "password",
    client_id: "pgforce",
    client_secret: "pgforce",
    username: "admin@example.com",
    password: "pgforce",
  });
  const response = await fetch(`${loginUrl}/services/oauth2/token`, { method: "POST", body: form });
  assert.equal(response.status, 200, "password grant");
  return response.json();
}

async function rest(token, instanceUrl, method, path, body) {
  const response = await fetch(`${instanceUrl}/services/data/v62.0${path}`, {
    method,
    headers: { authorization: `Bearer ${token.access_token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(response.ok, `${method} ${path}: HTTP ${response.status} ${await response.clone().text()}`);
  return response.status === 204 ? null : response.json();
}

// Collects subscription callbacks so the test can wait for them in order.
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }
  push(item) {
    this.items.push(item);
    for (const waiter of this.waiters.splice(0)) waiter();
  }
  async take(predicate, what, ms = 20000) {
    const find = () => {
      const index = this.items.findIndex(predicate);
      return index === -1 ? undefined : this.items.splice(index, 1)[0];
    };
    return withTimeout(
      (async () => {
        for (;;) {
          const found = find();
          if (found) return found;
          await new Promise((resolve) => this.waiters.push(resolve));
        }
      })(),
      ms,
      what,
    );
  }
}

const token = await login();
await control("PUT", "/events/cdc", { entities: ["Account"] });

const client = new PubSubApiClient(
  {
    authType: "user-supplied",
    accessToken: token.access_token,
    instanceUrl: token.instance_url,
    // organizationId left out: the client takes it from the token (the part before `!`).
    pubSubEndpoint: endpoint,
    // The client trusts only its bundled CA file (it passes that to grpc-js, which then
    // ignores the system store and NODE_EXTRA_CA_CERTS); its one option for another CA is
    // to accept an unknown certificate.
    rejectUnauthorizedSsl: false,
  },
  quiet,
);
await client.connect();

const inbox = new Inbox();
client.subscribeFromEarliestEvent("/data/AccountChangeEvent", (subscription, type, data) => {
  inbox.push({ type, data });
});

const account = await rest(token, token.instance_url, "POST", "/sobjects/Account", {
  Name: "Interop",
  Industry: "Energy",
  NumberOfEmployees: 7,
});
await rest(token, token.instance_url, "PATCH", `/sobjects/Account/${account.id}`, {
  Name: "Interop Renamed",
  Industry: null,
});
await rest(token, token.instance_url, "DELETE", `/sobjects/Account/${account.id}`);

const failOnError = (item) => {
  if (item.type === "error") throw new Error(`subscription error: ${item.data?.message ?? item.data}`);
  return item.type === "event";
};
const created = (await inbox.take(failOnError, "the CREATE event")).data;
const updated = (await inbox.take(failOnError, "the UPDATE event")).data;
const deleted = (await inbox.take(failOnError, "the DELETE event")).data;

const header = (event) => event.payload.ChangeEventHeader;
assert.equal(header(created).changeType, "CREATE");
assert.equal(header(created).entityName, "Account");
assert.deepEqual(header(created).recordIds, [account.id]);
assert.equal(created.payload.Name, "Interop");
assert.equal(created.payload.Industry, "Energy");
assert.equal(created.payload.NumberOfEmployees, 7);
assert.deepEqual(header(created).changedFields, []);

assert.equal(header(updated).changeType, "UPDATE");
const changed = [...header(updated).changedFields].sort();
for (const name of ["Industry", "LastModifiedDate", "Name"]) {
  assert.ok(changed.includes(name), `changedFields ${JSON.stringify(changed)} names ${name}`);
}
assert.ok(!changed.includes("NumberOfEmployees"), "an unchanged field is not named");
assert.deepEqual(header(updated).nulledFields, ["Industry"]);
assert.equal(updated.payload.Name, "Interop Renamed");
assert.equal(updated.payload.Industry, null);
assert.equal(updated.payload.NumberOfEmployees, null, "unchanged fields are null in an UPDATE");

assert.equal(header(deleted).changeType, "DELETE");
assert.deepEqual(header(deleted).recordIds, [account.id]);
assert.ok(created.replayId < updated.replayId && updated.replayId < deleted.replayId,
  `replay ids increase: ${created.replayId}, ${updated.replayId}, ${deleted.replayId}`);

// Idle: the server sends a keepalive (run.sh sets a 1 s interval).
await inbox.take((item) => item.type === "grpcKeepAlive", "a keepalive");

// An expired replay id ends the stream with Salesforce's error code in the trailers.
await control("POST", "/events/expire");
const expired = new Inbox();
client.subscribeFromReplayId("/data/ChangeEvents", (subscription, type, data) => {
  expired.push({ type, data });
}, null, created.replayId);
const failure = (await expired.take((item) => item.type === "error", "the replay error")).data;
assert.equal(failure.code, 3, `INVALID_ARGUMENT, got ${failure.code}: ${failure.details}`);
assert.deepEqual(failure.metadata.get("error-code"), [REPLAY_ID_CORRUPTED]);
assert.match(failure.details, /rpcId: /);

client.close();

// Plain grpc-js with pgforce's .proto, the certificate verified against the emulator's CA.
const definition = protoLoader.loadSync(process.env.PGFORCE_PROTO, { defaults: true });
const { PubSub } = grpc.loadPackageDefinition(definition).eventbus.v1;
const metadata = new grpc.Metadata();
metadata.add("accesstoken", token.access_token);
metadata.add("instanceurl", token.instance_url);
metadata.add("tenantid", token.access_token.split("!")[0]);
const plain = new PubSub(endpoint, grpc.credentials.createSsl(fs.readFileSync(process.env.PGFORCE_CA)));
const unary = (method, request) =>
  withTimeout(
    new Promise((resolve, reject) =>
      plain[method](request, metadata, (error, answer) => (error ? reject(error) : resolve(answer)))),
    10000,
    method,
  );
const topic = await unary("GetTopic", { topicName: "/data/AccountChangeEvent" });
assert.equal(topic.canSubscribe, true);
assert.equal(topic.canPublish, false);
const schema = await unary("GetSchema", { schemaId: topic.schemaId });
assert.equal(schema.schemaId, topic.schemaId);
assert.equal(JSON.parse(schema.schemaJson).name, "AccountChangeEvent");
assert.equal(schema.schemaId, created.schemaId, "events name the topic's schema");
const unknown = await unary("GetTopic", { topicName: "/data/NopeChangeEvent" }).then(
  () => assert.fail("an unknown topic was described"),
  (error) => error,
);
assert.equal(unknown.code, grpc.status.NOT_FOUND);
plain.close();

console.log("salesforce-pubsub-api-client and grpc-js with pgforce's proto: 2 passed, 0 failed");
// grpc-js keeps streams the client never cancels open after close(); nothing is left to do.
process.exit(0);
