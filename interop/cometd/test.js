// Faye, a third-party Bayeux client, against the emulator's Streaming API: OAuth password
// login, handshake with `Authorization: OAuth <token>`, a replay extension, Change Data
// Capture on /data/AccountChangeEvent (selected through the Tooling API) and a PushTopic
// channel, REST changes, and the events' fields. Exits non-zero on the first failure.
'use strict';

const assert = require('node:assert/strict');
const faye = require('faye');

const LOGIN_URL = process.env.PGFORCE_LOGIN_URL;
const VERSION = '62.0';
const CLIENT_TAG = 'faye-interop';
const WAIT_MS = 20000;

async function login() {
  const form = new URLSearchParams({
    grant_type: 'password',
    client_id: 'pgforce',
    client_secret: 'pgforce',
    username: 'admin@example.com',
    password: 'pgforce',
  });
  const response = await fetch(`${LOGIN_URL}/services/oauth2/token`, { method: 'POST', body: form });
  assert.equal(response.status, 200, 'password grant');
  return response.json();
}

function api(session) {
  return async (method, path, body) => {
    const response = await fetch(`${session.instance_url}/services/data/v${VERSION}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${session.access_token}`,
        'Content-Type': 'application/json',
        'Sforce-Call-Options': `client=${CLIENT_TAG}`,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
}

// A Faye client with the replay extension: each subscribe carries the position asked for.
function bayeux(session, replay) {
  const client = new faye.Client(`${session.instance_url}/cometd/${VERSION}`, { timeout: 30 });
  client.disable('websocket');
  client.setHeader('Authorization', `OAuth ${session.access_token}`);
  const seen = { handshakeExt: null };
  client.addExtension({
    outgoing(message, callback) {
      if (message.channel === '/meta/subscribe') {
        message.ext = message.ext || {};
        message.ext.replay = { [message.subscription]: replay[message.subscription] ?? -1 };
      }
      callback(message);
    },
    incoming(message, callback) {
      if (message.channel === '/meta/handshake' && message.successful) {
        seen.handshakeExt = message.ext;
      }
      callback(message);
    },
  });
  return { client, seen };
}

// Collects messages of a channel until `count` came, or fails after WAIT_MS.
function collect(client, channel, count) {
  const messages = [];
  let done;
  const finished = new Promise((resolve, reject) => {
    done = resolve;
    setTimeout(
      () => reject(new Error(`${channel}: ${messages.length} of ${count} events after ${WAIT_MS} ms`)),
      WAIT_MS,
    ).unref();
  });
  const subscription = client.subscribe(channel, (message) => {
    messages.push(message);
    if (messages.length >= count) done(messages);
  });
  return { subscription, finished };
}

async function main() {
  const session = await login();
  const call = api(session);

  let answer = await call('POST', '/tooling/sobjects/PlatformEventChannelMember', {
    FullName: 'ChangeEvents_AccountChangeEvent',
    Metadata: { eventChannel: 'ChangeEvents', selectedEntity: 'AccountChangeEvent' },
  });
  assert.equal(answer.status, 201, `channel member: ${JSON.stringify(answer.body)}`);
  answer = await call('POST', '/sobjects/PushTopic', {
    Name: 'AcctSync',
    Query: 'SELECT Id, Name, Industry FROM Account',
    ApiVersion: 62.0,
    NotifyForFields: 'All',
  });
  assert.equal(answer.status, 201, `push topic: ${JSON.stringify(answer.body)}`);

  const live = bayeux(session, {});
  const cdc = collect(live.client, '/data/AccountChangeEvent', 2);
  const topic = collect(live.client, '/topic/AcctSync', 2);
  await cdc.subscription;
  await topic.subscription;
  assert.deepEqual(live.seen.handshakeExt, { replay: true, 'payload.format': true });

  answer = await call('POST', '/sobjects/Account', { Name: 'Faye Co', Industry: 'Energy' });
  assert.equal(answer.status, 201, 'create Account');
  const id = answer.body.id;
  answer = await call('PATCH', `/sobjects/Account/${id}`, { Name: 'Faye Corp' });
  assert.equal(answer.status, 204, 'update Account');

  const changes = await cdc.finished;
  const [created, updated] = changes.map((m) => m.payload);
  assert.equal(created.ChangeEventHeader.entityName, 'Account');
  assert.equal(created.ChangeEventHeader.changeType, 'CREATE');
  assert.deepEqual(created.ChangeEventHeader.recordIds, [id]);
  assert.equal(created.ChangeEventHeader.changeOrigin, `com/salesforce/api/rest/${VERSION};client=${CLIENT_TAG}`);
  assert.equal(created.Name, 'Faye Co');
  assert.equal(created.Industry, 'Energy');
  assert.equal(created.IsDeleted, undefined);
  assert.equal(updated.ChangeEventHeader.changeType, 'UPDATE');
  assert.deepEqual(updated.ChangeEventHeader.changedFields, ['Name', 'LastModifiedDate']);
  assert.equal(updated.Name, 'Faye Corp');
  assert.ok(changes[0].event.replayId < changes[1].event.replayId, 'replay ids increase');

  const pushed = await topic.finished;
  assert.deepEqual(pushed.map((m) => m.event.type), ['created', 'updated']);
  assert.deepEqual(pushed[1].sobject, { Id: id, Name: 'Faye Corp', Industry: 'Energy' });
  assert.match(pushed[0].event.createdDate, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  // A second client replays every retained event (-2), then only those after the first (id).
  const replayAll = bayeux(session, { '/data/AccountChangeEvent': -2 });
  const all = collect(replayAll.client, '/data/AccountChangeEvent', 2);
  await all.subscription;
  const replayed = await all.finished;
  assert.deepEqual(replayed.map((m) => m.event.replayId), changes.map((m) => m.event.replayId));
  const replayAfter = bayeux(session, { '/data/AccountChangeEvent': changes[0].event.replayId });
  const after = collect(replayAfter.client, '/data/AccountChangeEvent', 1);
  await after.subscription;
  const rest = await after.finished;
  assert.equal(rest[0].event.replayId, changes[1].event.replayId);

  for (const c of [live, replayAll, replayAfter]) await c.client.disconnect();
  console.log('faye interop: 1 passed, 0 failed');
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`faye interop failed: ${error.stack || error}`);
    console.log('faye interop: 0 passed, 1 failed');
    process.exit(1);
  },
);
