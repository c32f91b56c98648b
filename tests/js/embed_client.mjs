// The embed module's graphql-transport-ws client (MeterlineClient) against a scripted socket
// and a manual clock: pings and the pong timeout, reconnect and resubscribe, backoff after
// server errors, final error codes, fatal close codes. Run by tests/test_frontend_snippets.py
// (`node tests/js/embed_client.mjs` prints "all checks passed" or fails on an assertion).
import assert from 'node:assert/strict';
import { install, advance, time } from './clock.mjs';
install();
Math.random = () => 1; // no jitter: backoff is base × 2^n exactly

globalThis.document = { baseURI: 'http://localhost:8000/' };
const sockets = [];
class MockWebSocket {
  static OPEN = 1; static CLOSED = 3;
  constructor(url, protocol) {
    Object.assign(this, { url, protocol, readyState: 0, sent: [], listeners: {}, closedWith: null });
    sockets.push(this);
  }
  addEventListener(type, fn) { (this.listeners[type] ??= []).push(fn); }
  emit(type, event = {}) { for (const fn of this.listeners[type] ?? []) fn(event); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code, reason) { this.closedWith = { code, reason }; this.readyState = 2; } // a dead peer: no 'close' event follows
  // helpers for the test
  serverOpen() { this.readyState = 1; this.emit('open'); }
  serverSend(message) { this.emit('message', { data: JSON.stringify(message) }); }
  serverClose(code, reason = '') { this.readyState = 3; this.emit('close', { code, reason }); }
  ofType(type) { return this.sent.filter((m) => m.type === type); }
}
globalThis.WebSocket = MockWebSocket;

const { MeterlineClient } = await import('../../frontend_snippets/meterline-embed.js');

function sink(log) {
  return {
    next: (p) => log.push(['next', p]),
    error: (errors, retrying) => log.push(['error', errors.map((e) => e.extensions?.code).join(','), retrying]),
    complete: () => log.push(['complete']),
    status: (s) => log.push(['status', s]),
  };
}
const last = (log, kind) => log.filter((e) => e[0] === kind).at(-1);

// --- ping / pong / ping timeout → reconnect + resubscribe -------------------------------
{
  const log = [];
  const client = MeterlineClient.for('/graphql', 'tok-1');
  const stop = client.subscribe('subscription A { a }', { x: 1 }, sink(log));
  assert.equal(sockets.length, 1);
  const ws = sockets[0];
  assert.equal(ws.url, 'ws://localhost:8000/graphql');
  ws.serverOpen();
  assert.deepEqual(ws.sent[0], { type: 'connection_init', payload: { authorization: 'Bearer tok-1' } });
  ws.serverSend({ type: 'connection_ack' });
  assert.equal(ws.ofType('subscribe').length, 1);
  assert.deepEqual(last(log, 'status'), ['status', 'live']);

  advance(19_999); assert.equal(ws.ofType('ping').length, 0, 'no ping before 20 s');
  advance(1); assert.equal(ws.ofType('ping').length, 1, 'a ping at 20 s');
  advance(5_000); ws.serverSend({ type: 'pong' });
  advance(20_000); assert.equal(ws.ofType('ping').length, 2, 'the next ping 20 s later');
  assert.equal(ws.closedWith, null);
  ws.serverSend({ type: 'pong' });
  advance(15_000); assert.equal(ws.ofType('ping').length, 3);
  // no pong now: after 10 s the socket is given up with 4499 and the client reconnects
  advance(9_999); assert.equal(ws.closedWith, null);
  advance(1);
  assert.deepEqual(ws.closedWith, { code: 4499, reason: 'ping timeout' });
  assert.deepEqual(last(log, 'status'), ['status', 'reconnecting']);
  assert.equal(sockets.length, 1, 'waits for the backoff');
  advance(500);
  assert.equal(sockets.length, 2, 'reconnected after 0.5 s');
  const ws2 = sockets[1];
  ws.serverClose(1006); // the old socket's late close event is ignored
  assert.equal(sockets.length, 2);
  ws2.serverOpen(); ws2.serverSend({ type: 'connection_ack' });
  const [resub] = ws2.ofType('subscribe');
  assert.deepEqual(resub.payload, { query: 'subscription A { a }', variables: { x: 1 } });
  assert.deepEqual(last(log, 'status'), ['status', 'live']);
  // the server's ping is answered
  ws2.serverSend({ type: 'ping' }); assert.equal(ws2.ofType('pong').length, 1);

  // --- a subscription ended with an INTERNAL error is resubscribed with backoff ----------
  ws2.serverSend({ id: resub.id, type: 'next', payload: { data: { a: 1 } } });
  ws2.serverSend({ id: resub.id, type: 'next', payload: { data: null, errors: [{ message: 'boom', extensions: { code: 'INTERNAL' } }] } });
  ws2.serverSend({ id: resub.id, type: 'complete' });
  assert.deepEqual(last(log, 'error'), ['error', 'INTERNAL', true]);
  assert.equal(ws2.ofType('subscribe').length, 1);
  advance(999); assert.equal(ws2.ofType('subscribe').length, 1);
  advance(1); assert.equal(ws2.ofType('subscribe').length, 2, 'resubscribed after 1 s');
  const again = ws2.ofType('subscribe')[1];
  assert.notEqual(again.id, resub.id, 'under a new id');
  // it fails again with an error message (unknown code): 2 s this time
  ws2.serverSend({ id: again.id, type: 'error', payload: [{ message: 'odd' }] });
  assert.deepEqual(last(log, 'error'), ['error', '', true]);
  advance(1_999); assert.equal(ws2.ofType('subscribe').length, 2);
  advance(1); assert.equal(ws2.ofType('subscribe').length, 3, 'then after 2 s');
  const third = ws2.ofType('subscribe')[2];
  // a message for the old id is ignored
  const before = log.length;
  ws2.serverSend({ id: again.id, type: 'next', payload: { data: { a: 'stale' } } });
  assert.equal(log.length, before);
  // a good push resets the backoff
  ws2.serverSend({ id: third.id, type: 'next', payload: { data: { a: 2 } } });
  ws2.serverSend({ id: third.id, type: 'error', payload: [{ message: 'x', extensions: { code: 'INTERNAL' } }] });
  advance(1_000); assert.equal(ws2.ofType('subscribe').length, 4, 'backoff back to 1 s');
  const fourth = ws2.ofType('subscribe')[3];

  // --- a final code is not retried -------------------------------------------------------
  ws2.serverSend({ id: fourth.id, type: 'next', payload: { errors: [{ message: 'expired', extensions: { code: 'UNAUTHENTICATED' } }] } });
  ws2.serverSend({ id: fourth.id, type: 'complete' });
  assert.deepEqual(last(log, 'error'), ['error', 'UNAUTHENTICATED', false]);
  advance(60_000);
  assert.equal(ws2.ofType('subscribe').length, 4, 'no resubscription after UNAUTHENTICATED');
  // the last subscription gone: the socket closes a second later (no ping timeout loop)
  assert.equal(ws2.closedWith?.code, 1000);
  stop(); // harmless after the end
}

// --- retry timer pending while the socket drops: the next ack starts it once --------------
{
  const log = [];
  const client = MeterlineClient.for('/graphql', 'tok-2');
  const stop = client.subscribe('subscription B { b }', {}, sink(log));
  const ws = sockets.at(-1);
  ws.serverOpen(); ws.serverSend({ type: 'connection_ack' });
  const [sub] = ws.ofType('subscribe');
  ws.serverSend({ id: sub.id, type: 'error', payload: [{ message: 'x', extensions: { code: 'INTERNAL' } }] });
  ws.serverClose(1006);
  advance(500);
  const ws2 = sockets.at(-1); assert.notEqual(ws2, ws);
  ws2.serverOpen(); ws2.serverSend({ type: 'connection_ack' });
  assert.equal(ws2.ofType('subscribe').length, 1);
  advance(5_000);
  assert.equal(ws2.ofType('subscribe').length, 1, 'not subscribed twice');
  stop();
  assert.equal(ws2.ofType('complete').length, 1, 'unsubscribing sends complete');
  advance(1_000); assert.equal(ws2.closedWith?.code, 1000);
}

// --- close codes --------------------------------------------------------------------------
for (const [code, expected] of [[4403, 'UNAUTHENTICATED'], [4401, 'UNAUTHENTICATED'], [4400, 'CONNECTION_REFUSED'],
  [4406, 'CONNECTION_REFUSED'], [4409, 'CONNECTION_REFUSED'], [4429, 'CONNECTION_REFUSED'], [4500, 'CONNECTION_REFUSED']]) {
  const log = [];
  const client = MeterlineClient.for('/graphql', `tok-${code}`);
  client.subscribe('subscription C { c }', {}, sink(log));
  const ws = sockets.at(-1);
  ws.serverOpen();
  ws.serverClose(code, 'Nope');
  assert.deepEqual(last(log, 'error'), ['error', expected, false], `close ${code}`);
  const count = sockets.length;
  advance(120_000);
  assert.equal(sockets.length, count, `no reconnect after ${code}`);
  if (expected === 'CONNECTION_REFUSED') {
    // the message names the code and the reason
    const errors = [];
    const c2 = MeterlineClient.for('/graphql', `tok-${code}`);
    assert.notEqual(c2, client, 'a failed client left the pool');
    c2.subscribe('subscription C { c }', {}, { ...sink([]), error: (e) => errors.push(...e) });
    sockets.at(-1).serverOpen(); sockets.at(-1).serverClose(code, 'Nope');
    assert.match(errors[0].message, new RegExp(`${code}: Nope`));
  }
}
for (const code of [1000, 1001, 1006, 4499, 4408, 1012]) {
  const log = [];
  const client = MeterlineClient.for('/graphql', `tok-r${code}`);
  const stop = client.subscribe('subscription D { d }', {}, sink(log));
  const ws = sockets.at(-1);
  ws.serverOpen(); ws.serverSend({ type: 'connection_ack' });
  ws.serverClose(code);
  assert.deepEqual(last(log, 'status'), ['status', 'reconnecting'], `close ${code}`);
  assert.equal(log.filter((e) => e[0] === 'error').length, 0);
  const count = sockets.length;
  advance(500);
  assert.equal(sockets.length, count + 1, `reconnects after ${code}`);
  stop();
  advance(2_000);
}

// --- no connection_ack within 10 s: given up with 4408, retried --------------------------
{
  const log = [];
  const client = MeterlineClient.for('/graphql', 'tok-ack');
  const stop = client.subscribe('subscription E { e }', {}, sink(log));
  const ws = sockets.at(-1);
  ws.serverOpen();
  const count = sockets.length;
  advance(10_000);
  assert.equal(ws.closedWith?.code, 4408);
  advance(500);
  assert.equal(sockets.length, count + 1);
  stop();
  advance(2_000);
}
console.log('embed client: all checks passed at t =', time());
