/**
 * Meterline embeddable web components — one dependency-free ES module, no build step.
 *
 *   <script type="module" src="/embed/meterline-embed.js"></script>
 *   <meterline-usage token="ml_ct_…" customer-id="…" metric-id="…" group-key="model"></meterline-usage>
 *   <meterline-draft-invoice token="ml_ct_…" customer-id="…"></meterline-draft-invoice>
 *   <meterline-budget token="ml_ct_…" customer-id="…" metric-id="…"></meterline-budget>
 *
 * `token` is a *customer token* (ml_ct_…) minted server-side with createCustomerToken —
 * never an API key. Prefer setting it from script (`el.token = …`): the property is not
 * reflected into the attribute, which anything reading the DOM could see. Reads are live subscriptions (graphql-transport-ws, one socket per
 * endpoint + token shared by every component of the page); writes are HTTP POSTs.
 * Money and quantities are decimal strings and are shown exactly as sent; they are only
 * turned into JS numbers to size chart bars. See EMBED.md for attributes, events, parts
 * and theming.
 */

// ── GraphQL operations (validated against schema/schema.graphql by a test) ──────────────

const USAGE_SUBSCRIPTION = /* GraphQL */ `
  subscription MeterlineUsage(
    $customerId: ID!, $metricId: ID!, $startingAt: DateTime!, $endingBefore: DateTime!,
    $windowSize: UsageWindow!, $groupKey: [String!]
  ) {
    usageUpdated(customerId: $customerId) {
      id
      usage(
        billableMetricId: $metricId, startingAt: $startingAt, endingBefore: $endingBefore,
        windowSize: $windowSize, groupKey: $groupKey
      ) { startingAt endingBefore group quantity }
    }
  }
`;

const DRAFT_INVOICES_SUBSCRIPTION = /* GraphQL */ `
  subscription MeterlineDraftInvoices($customerId: ID!) {
    draftInvoiceUpdated(customerId: $customerId) {
      id contractId currency startingAt endingBefore status subtotal total
      lines { type productId name quantity unitPrice amount group }
    }
  }
`;

const ALERTS_SUBSCRIPTION = /* GraphQL */ `
  subscription MeterlineAlerts($customerId: ID!) {
    alertStateChanged(customerId: $customerId) {
      id name alertType threshold customerId billableMetricId groupKey groupValues archivedAt
      statuses { customerId group state }
    }
  }
`;

const CREATE_ALERT_MUTATION = /* GraphQL */ `
  mutation MeterlineCreateAlert($input: CreateAlertInput!) {
    createAlert(input: $input) {
      id name alertType threshold customerId billableMetricId groupKey groupValues archivedAt
      statuses { customerId group state }
    }
  }
`;

const ARCHIVE_ALERT_MUTATION = /* GraphQL */ `
  mutation MeterlineArchiveAlert($id: ID!) {
    archiveAlert(id: $id) { id archivedAt }
  }
`;

// ── Exact decimal strings (BigInt; never floats) ─────────────────────────────────────────

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
/** What the budget form accepts as a threshold: "100", "250.50". */
const THRESHOLD_INPUT = /^\d+(\.\d+)?$/;

/** "12.50" → {n: 1250n, scale: 2}; exponent forms ("1E+2") too; null if not a decimal. */
function parseDecimal(text) {
  const m = DECIMAL.exec(String(text ?? '').trim());
  if (!m || (!m[2] && !m[3])) return null;
  let scale = (m[3] || '').length - Number(m[4] || 0);
  let n = BigInt((m[2] || '') + (m[3] || '') || '0');
  if (m[1] === '-') n = -n;
  if (scale < 0) [n, scale] = [n * 10n ** BigInt(-scale), 0];
  return { n, scale };
}

function formatDecimal({ n, scale }) {
  const negative = n < 0n;
  let digits = (negative ? -n : n).toString().padStart(scale + 1, '0');
  if (scale > 0) digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return (negative ? '-' : '') + digits;
}

/** The exact sum of decimal strings, as a decimal string ("0" for none). */
export function addDecimals(values) {
  let sum = { n: 0n, scale: 0 };
  for (const value of values) {
    const d = parseDecimal(value);
    if (!d) continue;
    const scale = Math.max(sum.scale, d.scale);
    sum = { n: sum.n * 10n ** BigInt(scale - sum.scale) + d.n * 10n ** BigInt(scale - d.scale), scale };
  }
  return formatDecimal(sum);
}

/** A decimal string as sent, rewritten without exponent when it has one ("1E+2" → "100"). */
function plain(value) {
  if (value == null) return '';
  const text = String(value);
  const d = /[eE]/.test(text) ? parseDecimal(text) : null;
  return d ? formatDecimal(d) : text;
}

const isNegative = (value) => (parseDecimal(value)?.n ?? 0n) < 0n;
const money = (amount, currency) => `${plain(amount)} ${currency ?? ''}`.trim();

// ── Formatting and DOM helpers (DOM APIs and textContent only: no innerHTML) ─────────────

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const utc = (options) => new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', ...options });
const FORMAT_DAY = utc({ month: 'short', day: 'numeric' });
const FORMAT_HOUR = utc({ month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
const FORMAT_DATE = utc({ year: 'numeric', month: 'short', day: 'numeric' });
const FORMAT_AXIS = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

/** Group values ({"model": "gpt-5"}) as text: values only ("gpt-5") or "model: gpt-5". */
function groupText(group, withKeys = false) {
  const entries = group && typeof group === 'object' ? Object.entries(group) : [];
  return entries.map(([k, v]) => (withKeys ? `${k}: ${v ?? '—'}` : String(v ?? '—'))).join(withKeys ? ', ' : ' / ');
}

/** An element: attributes from `props` (text → textContent, on* → listeners), then children. */
function h(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

function svg(tag, props = {}, ...children) {
  return build(document.createElementNS('http://www.w3.org/2000/svg', tag), props, children);
}

function build(el, props, children) {
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat().filter((c) => c != null && c !== false)); // strings become text nodes
  return el;
}

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));
const list = (text) => (text || '').split(',').map((s) => s.trim()).filter(Boolean);

// ── The API client: HTTP for mutations, graphql-transport-ws for subscriptions ──────────

const codeOf = (error) => error?.extensions?.code ?? 'ERROR';

/** GraphQL errors as one Error; `errors` keeps them, `code` is the first one's code. */
export class MeterlineError extends Error {
  constructor(errors) {
    const all = Array.isArray(errors) && errors.length ? errors : [{ message: 'Unknown error', extensions: { code: 'ERROR' } }];
    super(all.map((e) => `${e.message} (${codeOf(e)})`).join('; '));
    this.name = 'MeterlineError';
    this.errors = all;
    this.code = codeOf(all[0]);
  }
}

const errorsOf = (err) => (err instanceof MeterlineError ? err.errors : [{ message: String(err?.message ?? err), extensions: { code: 'ERROR' } }]);

function endpointUrls(endpoint) {
  const http = new URL(endpoint || '/graphql', document.baseURI);
  const ws = new URL(http.href);
  ws.protocol = http.protocol === 'https:' ? 'wss:' : 'ws:';
  return { http: http.href, ws: ws.href };
}

/** One query or mutation over HTTP; resolves to `data`, rejects with a MeterlineError. */
export async function graphqlRequest(endpoint, token, query, variables = {}) {
  let response;
  try {
    response = await fetch(endpointUrls(endpoint).http, {
      method: 'POST',
      credentials: 'omit',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    throw new MeterlineError([{ message: `Network error: ${err.message}`, extensions: { code: 'NETWORK' } }]);
  }
  const body = await response.json().catch(() => null);
  if (body?.errors?.length) throw new MeterlineError(body.errors);
  if (!response.ok || !body?.data) {
    const code = response.status === 429 ? 'RATE_LIMITED' : `HTTP_${response.status}`;
    throw new MeterlineError([{ message: `Unexpected response (HTTP ${response.status})`, extensions: { code } }]);
  }
  return body.data;
}

const PROTOCOL = 'graphql-transport-ws';
const ACK_TIMEOUT_MS = 10_000;
const PING_INTERVAL_MS = 20_000; // a ping this often while the socket is open…
const PONG_TIMEOUT_MS = 10_000; // …and the socket is given up when its pong takes longer
const CLOSE_PING_TIMEOUT = 4499;
const CLOSE_ACK_TIMEOUT = 4408;
const BACKOFF_MS = 500; // first reconnection; doubles per failed attempt…
const RESUBSCRIBE_MS = 1_000; // first resubscription after the server ended one with errors…
const MAX_BACKOFF_MS = 30_000; // …up to this (with jitter)
const IDLE_CLOSE_MS = 1_000; // a socket with no subscriptions closes after this
// Close codes after which reconnecting would only fail again (as graphql-ws): not retried.
const FATAL_CLOSE_CODES = new Set([4400, 4401, 4403, 4406, 4409, 4429, 4500]);
const UNAUTHENTICATED_CLOSE_CODES = new Set([4401, 4403]);
// Error codes that end a subscription for good; any other (INTERNAL, unknown) is retried.
const FINAL_CODES = new Set(['UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'VALIDATION', 'BAD_REQUEST']);

/** Capped exponential backoff with jitter: `base` × 2^attempt, at most 30 s, × 0.5–1. */
const backoff = (base, attempt) => Math.min(MAX_BACKOFF_MS, base * 2 ** attempt) * (0.5 + Math.random() / 2);

/**
 * A graphql-transport-ws connection for one endpoint and token, shared by every component
 * of the page (MeterlineClient.for). Opens on the first subscription, closes when idle,
 * pings every 20 s (no pong within 10 s: the socket is dropped as dead), reconnects with
 * capped exponential backoff and resubscribes. A fatal close (4400, 4401, 4403, 4406, 4409,
 * 4429, 4500) fails every subscription and is not retried: 4401/4403 with UNAUTHENTICATED,
 * the others with CONNECTION_REFUSED. A subscription the server ends with errors is
 * subscribed again with backoff, unless an error's code is final (UNAUTHENTICATED,
 * FORBIDDEN, NOT_FOUND, VALIDATION, BAD_REQUEST).
 *
 * A sink is {next(payload), error(errors, retrying), complete(), status(state)}; `state` is
 * "connecting", "live" or "reconnecting"; `retrying` is true when the subscription will be
 * started again by itself.
 */
export class MeterlineClient {
  static #pool = new Map();

  static for(endpoint, token) {
    const urls = endpointUrls(endpoint);
    const key = `${urls.ws}\n${token}`;
    let client = MeterlineClient.#pool.get(key);
    if (!client) MeterlineClient.#pool.set(key, (client = new MeterlineClient(urls, token, key)));
    return client;
  }

  #urls; #token; #key;
  #ws = null; #acked = false; #seq = 0; #attempt = 0;
  #subs = new Set(); // every subscription wanted: {id, payload, sink, errors, attempt, timer}
  #running = new Map(); // id → subscription, for those started on the current socket
  #retryTimer = 0; #ackTimer = 0; #idleTimer = 0; #pingTimer = 0; #pongTimer = 0;

  constructor(urls, token, key) {
    [this.#urls, this.#token, this.#key] = [urls, token, key];
  }

  /** Start a subscription; returns the function that stops it. */
  subscribe(query, variables, sink) {
    clearTimeout(this.#idleTimer);
    if (!MeterlineClient.#pool.has(this.#key)) MeterlineClient.#pool.set(this.#key, this);
    const sub = { id: null, payload: { query, variables }, sink, errors: null, attempt: 0, timer: 0 };
    this.#subs.add(sub);
    sink.status?.(this.#acked ? 'live' : this.#attempt ? 'reconnecting' : 'connecting');
    if (this.#acked) this.#start(sub);
    else this.#open();
    return () => {
      const running = this.#running.get(sub.id) === sub;
      if (this.#drop(sub) && running && this.#acked) this.#send({ id: sub.id, type: 'complete' });
    };
  }

  #send(message) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
  }

  /** Send `subscribe` for `sub` on the acknowledged socket, under a new id. */
  #start(sub) {
    clearTimeout(sub.timer);
    sub.timer = 0;
    if (this.#running.get(sub.id) === sub) this.#running.delete(sub.id);
    [sub.id, sub.errors] = [String(++this.#seq), null];
    this.#running.set(sub.id, sub);
    this.#send({ id: sub.id, type: 'subscribe', payload: sub.payload });
  }

  #drop(sub) {
    clearTimeout(sub.timer);
    if (this.#running.get(sub.id) === sub) this.#running.delete(sub.id);
    const had = this.#subs.delete(sub);
    if (!this.#subs.size) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = setTimeout(() => this.#shutdown(), IDLE_CLOSE_MS);
    }
    return had;
  }

  #open() {
    if (this.#ws || this.#retryTimer) return; // connecting, or waiting to retry
    let ws;
    try {
      ws = new WebSocket(this.#urls.ws, PROTOCOL);
    } catch (err) {
      this.#fail([{ message: `Cannot open ${this.#urls.ws}: ${err.message}`, extensions: { code: 'CONFIG' } }]);
      return;
    }
    [this.#ws, this.#acked] = [ws, false];
    ws.addEventListener('open', () => {
      if (ws !== this.#ws) return;
      this.#send({ type: 'connection_init', payload: { authorization: `Bearer ${this.#token}` } });
      this.#ackTimer = setTimeout(() => this.#abandon(ws, CLOSE_ACK_TIMEOUT, 'connection_ack timeout'), ACK_TIMEOUT_MS);
    });
    ws.addEventListener('message', (event) => ws === this.#ws && this.#receive(event.data));
    ws.addEventListener('close', (event) => ws === this.#ws && this.#closed(event.code, event.reason));
  }

  /** Give up on `ws` now (no answer to connection_init or to a ping): close it and carry on
   * as if it had closed, without waiting for a closing handshake a dead peer never ends. */
  #abandon(ws, code, reason) {
    if (ws !== this.#ws) return;
    try {
      ws.close(code, reason);
    } catch {
      // closing an already closed socket: nothing to do
    }
    this.#closed(code, reason);
  }

  /** While the socket is acknowledged: a ping every 20 s, each answered within 10 s. */
  #startPings(ws) {
    this.#stopPings();
    this.#pingTimer = setInterval(() => {
      if (ws !== this.#ws || this.#pongTimer) return;
      this.#send({ type: 'ping' });
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = 0;
        this.#abandon(ws, CLOSE_PING_TIMEOUT, 'ping timeout');
      }, PONG_TIMEOUT_MS);
    }, PING_INTERVAL_MS);
  }

  #stopPings() {
    clearInterval(this.#pingTimer);
    clearTimeout(this.#pongTimer);
    [this.#pingTimer, this.#pongTimer] = [0, 0];
  }

  #receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    const sub = message.id != null ? this.#running.get(message.id) : undefined;
    switch (message.type) {
      case 'connection_ack':
        clearTimeout(this.#ackTimer);
        [this.#acked, this.#attempt] = [true, 0];
        this.#startPings(this.#ws);
        for (const s of this.#subs) {
          this.#start(s);
          s.sink.status?.('live');
        }
        break;
      case 'ping':
        this.#send({ type: 'pong' });
        break;
      case 'pong':
        clearTimeout(this.#pongTimer);
        this.#pongTimer = 0;
        break;
      case 'next':
        if (!sub) break;
        if (message.payload?.errors?.length) sub.errors = message.payload.errors;
        else [sub.errors, sub.attempt] = [null, 0]; // a good push resets the backoff
        sub.sink.next(message.payload ?? {});
        break;
      case 'error': { // the operation was refused: it is over
        if (!sub) break;
        const errors = [].concat(message.payload ?? []).filter(Boolean);
        this.#ended(sub, errors.length ? errors : [{ message: 'The subscription failed.', extensions: { code: 'ERROR' } }]);
        break;
      }
      case 'complete': // the server ended it (after errors, such as an expired token)
        if (!sub) break;
        if (sub.errors) this.#ended(sub, sub.errors);
        else {
          this.#drop(sub);
          sub.sink.complete();
        }
        break;
      default:
    }
  }

  /** The server ended `sub` with `errors`: subscribe again later unless one is final. */
  #ended(sub, errors) {
    this.#running.delete(sub.id);
    if (errors.some((e) => FINAL_CODES.has(codeOf(e)))) {
      this.#drop(sub);
      sub.sink.error(errors, false);
      return;
    }
    const delay = backoff(RESUBSCRIBE_MS, sub.attempt);
    sub.attempt += 1;
    sub.sink.error(errors, true);
    sub.timer = setTimeout(() => {
      sub.timer = 0;
      // not acknowledged (reconnecting): the next connection_ack starts it
      if (this.#subs.has(sub) && this.#acked) this.#start(sub);
    }, delay);
  }

  #closed(code, reason) {
    clearTimeout(this.#ackTimer);
    this.#stopPings();
    [this.#ws, this.#acked] = [null, false];
    this.#running.clear();
    if (FATAL_CLOSE_CODES.has(code)) {
      this.#fail([UNAUTHENTICATED_CLOSE_CODES.has(code)
        ? { message: 'The token was refused: it is missing, invalid or expired.', extensions: { code: 'UNAUTHENTICATED' } }
        : { message: `The server refused the connection (${code}${reason ? `: ${reason}` : ''}).`, extensions: { code: 'CONNECTION_REFUSED', closeCode: code } }]);
      return;
    }
    if (!this.#subs.size) return;
    const delay = backoff(BACKOFF_MS, this.#attempt);
    this.#attempt += 1;
    for (const s of this.#subs) s.sink.status?.('reconnecting');
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = 0;
      if (this.#subs.size) this.#open();
    }, delay);
  }

  /** End every subscription with `errors` and leave the pool (a later `for` starts afresh). */
  #fail(errors) {
    if (MeterlineClient.#pool.get(this.#key) === this) MeterlineClient.#pool.delete(this.#key);
    const subs = [...this.#subs];
    this.#subs.clear();
    this.#running.clear();
    for (const s of subs) {
      clearTimeout(s.timer);
      s.sink.error(errors, false);
    }
  }

  #shutdown() {
    if (this.#subs.size) return;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#ackTimer);
    this.#stopPings();
    const ws = this.#ws;
    [this.#ws, this.#acked, this.#retryTimer, this.#attempt] = [null, false, 0, 0];
    ws?.close(1000, 'idle');
    if (MeterlineClient.#pool.get(this.#key) === this) MeterlineClient.#pool.delete(this.#key);
  }
}

// ── Styles (themed by --meterline-* custom properties) ───────────────────────────────────

const BASE_CSS = `
:host {
  --_accent: var(--meterline-accent, #2563eb); --_danger: var(--meterline-danger, #b91c1c);
  --_ok: var(--meterline-ok, #15803d); --_muted: var(--meterline-muted, #4b5563);
  --_border: var(--meterline-border, #d1d5db); --_bg: var(--meterline-bg, #fff);
  --_radius: var(--meterline-radius, 8px);
  display: block; box-sizing: border-box; padding: 1rem; line-height: 1.4;
  font-family: var(--meterline-font, system-ui, -apple-system, "Segoe UI", sans-serif);
  color: var(--meterline-color, #111827); background: var(--_bg);
  border: 1px solid var(--_border); border-radius: var(--_radius);
}
:host([hidden]) { display: none; }
*, *::before, *::after { box-sizing: inherit; }
header { display: flex; justify-content: space-between; align-items: baseline; gap: .5rem; flex-wrap: wrap; }
.title { font-size: 1.05rem; margin: 0 0 .5rem; }
.status, .muted, .hint { color: var(--_muted); font-size: .85rem; }
.status[data-status="live"]::before { content: "● "; color: var(--_ok); }
.error:empty { display: none; }
.error { color: var(--_danger); border: 1px solid currentColor; border-radius: var(--_radius); padding: .5rem .75rem; margin: .5rem 0; }
.error p { margin: 0; }
.code { font-family: ui-monospace, monospace; font-weight: 600; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
caption { text-align: start; font-weight: 600; padding-bottom: .4rem; }
th, td { text-align: start; padding: .35rem .5rem; border-bottom: 1px solid var(--_border); vertical-align: top; }
.num { text-align: end; font-variant-numeric: tabular-nums; white-space: nowrap; }
button, input, select { font: inherit; }
input, select { color: inherit; background: var(--_bg); border: 1px solid var(--_border); border-radius: calc(var(--_radius) / 2); padding: .35rem .5rem; min-width: 0; }
button { cursor: pointer; border-radius: calc(var(--_radius) / 2); padding: .4rem .9rem; border: 1px solid var(--_accent); background: var(--_accent); color: #fff; }
button.secondary { background: transparent; color: var(--_accent); }
button[aria-disabled="true"] { opacity: .6; cursor: progress; }
:focus-visible { outline: 2px solid var(--_accent); outline-offset: 2px; }
[aria-invalid="true"] { border-color: var(--_danger); }
.s1 { --_c: var(--meterline-chart-1, #2563eb); } .s2 { --_c: var(--meterline-chart-2, #d97706); }
.s3 { --_c: var(--meterline-chart-3, #059669); } .s4 { --_c: var(--meterline-chart-4, #db2777); }
.s5 { --_c: var(--meterline-chart-5, #7c3aed); } .s6 { --_c: var(--meterline-chart-6, #0891b2); }
`;

const STATUS_TEXT = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', error: 'Stopped', ended: 'Stopped' };

// ── The base element: attributes, lifecycle, live subscriptions, errors ─────────────────

const COMMON_ATTRIBUTES = ['token', 'customer-id', 'endpoint', 'heading', 'heading-level'];

/** HTMLElement in browsers; a stand-in elsewhere so the module can be imported (SSR). */
const ElementBase = globalThis.HTMLElement ?? class {};

class MeterlineElement extends ElementBase {
  static get observedAttributes() {
    return COMMON_ATTRIBUTES;
  }

  static heading = '';
  static css = '';

  constructor() {
    super();
    this.root = this.attachShadow({ mode: 'open' });
    this._title = h('h2', { part: 'title', class: 'title' });
    this._status = h('span', { part: 'status', class: 'status', role: 'status' });
    this._error = h('div', { id: 'ml-error', part: 'error', class: 'error', role: 'alert' });
    this._body = h('div', { part: 'body', class: 'body' });
    this._cleanups = [];
    this._errorSource = null;
    this._errorText = '';
    this.root.append(
      h('style', { text: BASE_CSS + this.constructor.css }),
      h('div', { part: 'container', class: 'card' },
        h('header', { part: 'header' }, this._title, this._status), this._error, this._body),
    );
  }

  /** A token set here stays in this private field: it is never written into the `token`
   * attribute, where anything reading the DOM (session replay, analytics) would see it.
   * The attribute still works; whichever was set last wins. null forgets the property's. */
  #token = null;

  get token() { return this.#token ?? this.getAttribute('token'); }
  set token(value) {
    const token = value == null ? null : String(value);
    if (token === this.#token) return;
    this.#token = token;
    if (this.isConnected) this._queueRestart();
  }
  get customerId() { return this.getAttribute('customer-id'); }
  set customerId(value) { this.setAttribute('customer-id', value); }
  get endpoint() { return this.getAttribute('endpoint') || '/graphql'; }
  set endpoint(value) { this.setAttribute('endpoint', value); }

  connectedCallback() {
    for (const name of ['token', 'customerId', 'endpoint']) {
      // a property set before the element was defined shadows the accessor: replay it
      if (Object.prototype.hasOwnProperty.call(this, name)) {
        const value = this[name];
        delete this[name];
        this[name] = value;
      }
    }
    this._queueRestart();
  }

  disconnectedCallback() {
    this._stop();
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue) return;
    // a token set on the attribute is now the newer one (removing the attribute, say to
    // clear it from the DOM after setting the property, keeps the property's token)
    if (name === 'token' && newValue !== null) this.#token = null;
    if (this.isConnected) this._queueRestart();
  }

  /** Restart once per task however many attributes changed (a token refresh, a new window). */
  _queueRestart() {
    if (this._restartQueued) return;
    this._restartQueued = true;
    queueMicrotask(() => {
      this._restartQueued = false;
      if (!this.isConnected) return;
      this._stop();
      this._begin();
    });
  }

  _stop() {
    for (const cleanup of this._cleanups.splice(0)) cleanup();
  }

  _required() {
    return ['token', 'customer-id'];
  }

  /** Messages for attributes present but invalid (shown as CONFIG errors). */
  _invalidAttributes() {
    return [];
  }

  _begin() {
    const level = clamp(parseInt(this.getAttribute('heading-level'), 10) || 2, 1, 6);
    if (this._title.tagName !== `H${level}`) {
      const title = h(`h${level}`, { part: 'title', class: 'title' });
      this._title.replaceWith(title);
      this._title = title;
    }
    this._title.textContent = this.getAttribute('heading') || this.constructor.heading;
    const missing = this._required().filter((name) => !(name === 'token' ? this.token : this.getAttribute(name))?.trim());
    const problems = [
      ...(missing.length ? [`Missing attribute: ${missing.join(', ')}`] : []),
      ...this._invalidAttributes(),
    ];
    if (problems.length) {
      this._showError(problems.map((message) => ({ message, extensions: { code: 'CONFIG' } })), 'live');
      this._setStatus('error');
      return;
    }
    this._clearError('live');
    this._start();
  }

  /** Subclasses subscribe here (attributes are present). */
  _start() {}

  _timeout(callback, ms) {
    const timer = setTimeout(callback, clamp(ms, 0, 2 ** 31 - 1));
    this._cleanups.push(() => clearTimeout(timer));
  }

  /** A live subscription of this element, stopped with it; `onData(data)` on every push.
   * Errors are shown; one the client retries shows "Reconnecting…", a final one "Stopped". */
  _live(query, variables, onData) {
    let failed = false; // a final error is shown: connection states do not hide it
    const client = MeterlineClient.for(this.endpoint, this.token);
    this._cleanups.push(client.subscribe(query, variables, {
      next: (payload) => {
        if (payload.errors?.length) this._showError(payload.errors, 'live');
        else {
          failed = false; // a good push: later states show again ("Reconnecting…")
          this._clearError('live');
          this._setStatus('live');
        }
        if (payload.data) onData(payload.data);
      },
      error: (errors, retrying) => {
        failed = !retrying;
        this._showError(errors, 'live');
        this._setStatus(retrying ? 'reconnecting' : 'error');
      },
      complete: () => failed || this._setStatus('ended'),
      status: (state) => failed || this._setStatus(state),
    }));
  }

  /** A query or mutation over HTTP with this element's token. */
  _request(query, variables) {
    return graphqlRequest(this.endpoint, this.token, query, variables);
  }

  _setStatus(state) {
    this.dataset.status = state;
    this._status.dataset.status = state;
    this._status.textContent = STATUS_TEXT[state] ?? state;
  }

  /** Show GraphQL errors (code and message) in the role="alert" region. `source` is "live"
   * (the subscription; cleared by its next good push) or "action" (a form or button). */
  _showError(errors, source) {
    const text = errors.map((e) => `${codeOf(e)}: ${e.message ?? ''}`).join('\n');
    // the same live error again (the `complete` after an error push, a retry failing alike)
    // is left as is: neither announced again nor fired again
    if (source === 'live' && this._errorSource === 'live' && text === this._errorText) return;
    [this._errorSource, this._errorText] = [source, text];
    this._error.replaceChildren(...errors.map((e) =>
      h('p', {}, h('span', { class: 'code', part: 'error-code', text: codeOf(e) }), ': ', String(e.message ?? ''))));
    this._emit('meterline:error', { errors, code: codeOf(errors[0]) });
  }

  _clearError(source) {
    if (source && this._errorSource !== source) return;
    [this._errorSource, this._errorText] = [null, ''];
    this._error.replaceChildren();
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

// ── <meterline-usage>: live usage per group value, as a stacked bar chart ────────────────

const USAGE_CSS = `
.chart { display: block; width: 100%; height: auto; overflow: visible; }
.chart text { fill: var(--_muted); font-size: 12px; }
.chart .grid { stroke: var(--_border); stroke-width: 1; }
.chart .axis { stroke: var(--_muted); stroke-width: 1; }
.chart rect { fill: var(--_c); }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1rem; padding: 0; margin: .5rem 0; font-size: .9rem; }
.legend li { display: flex; align-items: center; gap: .4rem; }
.swatch { width: .8rem; height: .8rem; border-radius: 2px; background: var(--_c); display: inline-block; }
details { margin-top: .5rem; } summary { cursor: pointer; color: var(--_accent); }
.scroll { overflow-x: auto; max-height: 20rem; }
`;

/** How the metric aggregates a bucket (the `aggregation` attribute). Sums of buckets (and
 * the chart's stacks) mean something for sum and count only. */
const AGGREGATIONS = {
  sum: { additive: true },
  count: { additive: true },
  max: { additive: false, per: 'maximum' },
  unique: { additive: false, per: 'unique count' },
  latest: { additive: false, per: 'latest value' },
};

export class MeterlineUsage extends MeterlineElement {
  static get observedAttributes() {
    return [...COMMON_ATTRIBUTES, 'metric-id', 'group-key', 'window', 'days', 'aggregation'];
  }

  static heading = 'Usage';
  static css = USAGE_CSS;

  constructor() {
    super();
    this._chart = h('div', { class: 'chart-box' });
    this._legend = h('ul', { part: 'legend', class: 'legend' });
    this._table = h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Usage data' });
    // <details> keeps its open state across updates: only its table is replaced
    const details = h('details', { part: 'table' }, h('summary', { text: 'Show the numbers as a table' }), this._table);
    this._body.append(this._chart, this._legend, details);
    // a group value keeps its colour across updates: label → colour index, by first appearance
    this._colours = new Map();
    this._coloursFor = null;
    // the SVG is drawn at its box's width, so its text keeps its size: redraw on resize
    this._width = 640;
    this._resizer = new ResizeObserver(([entry]) => {
      const width = Math.round(entry.contentRect.width);
      if (width > 0 && Math.abs(width - this._width) > 4) {
        this._width = width;
        if (this._drawn) this._drawChart(...this._drawn);
      }
    });
  }

  _required() {
    return [...super._required(), 'metric-id'];
  }

  _aggregation() {
    return (this.getAttribute('aggregation') || 'sum').trim().toLowerCase();
  }

  _invalidAttributes() {
    const aggregation = this._aggregation();
    return Object.hasOwn(AGGREGATIONS, aggregation) ? []
      : [`aggregation is one of ${Object.keys(AGGREGATIONS).join(', ')}, not "${aggregation}"`];
  }

  _start() {
    const hourly = (this.getAttribute('window') || 'day').trim().toLowerCase() === 'hour';
    const bucket = hourly ? HOUR_MS : DAY_MS;
    const days = clamp(parseInt(this.getAttribute('days'), 10) || 7, 1, hourly ? 31 : 366);
    // a sliding window of whole UTC buckets, ending with the current (open) bucket
    const end = Math.floor(Date.now() / bucket) * bucket + bucket;
    const start = end - days * DAY_MS;
    const aggregation = this._aggregation();
    this._range = { start, end, bucket, hourly, days, aggregation, ...AGGREGATIONS[aggregation] };
    const groupKey = list(this.getAttribute('group-key'));
    const variables = {
      customerId: this.customerId,
      metricId: this.getAttribute('metric-id'),
      startingAt: new Date(start).toISOString(),
      endingBefore: new Date(end).toISOString(),
      windowSize: hourly ? 'HOUR' : 'DAY',
      groupKey: groupKey.length ? groupKey : null,
    };
    const series = JSON.stringify([variables.customerId, variables.metricId, variables.groupKey]);
    if (this._coloursFor !== series) [this._colours, this._coloursFor] = [new Map(), series];
    this._resizer.observe(this._chart);
    this._cleanups.push(() => this._resizer.disconnect());
    this._live(USAGE_SUBSCRIPTION, variables, (data) => this._render(data.usageUpdated?.usage ?? []));
    this._timeout(() => this._queueRestart(), end - Date.now() + 1000); // the hour/day rolls
  }

  _render(points) {
    const { start, end, bucket, additive, aggregation } = this._range;
    const series = new Map(); // label → {label, group, quantities: Map(bucket ms → decimal string)}
    for (const point of points) {
      const label = groupText(point.group) || 'All';
      if (!series.has(label)) series.set(label, { label, group: point.group, quantities: new Map() });
      const quantities = series.get(label).quantities;
      const at = Date.parse(point.startingAt);
      quantities.set(at, additive ? addDecimals([quantities.get(at), point.quantity]) : point.quantity);
    }
    const groups = [...series.values()].sort((a, b) => a.label.localeCompare(b.label));
    for (const s of groups) {
      if (!this._colours.has(s.label)) this._colours.set(s.label, this._colours.size);
      const last = Math.max(...s.quantities.keys());
      Object.assign(s, {
        colour: `s${(this._colours.get(s.label) % 6) + 1}`,
        total: additive ? addDecimals(s.quantities.values()) : null,
        latest: plain(s.quantities.get(last)), // the value of its latest bucket with usage
      });
    }
    // a total only where buckets add up (sum, count): none for max, unique, latest
    const total = additive ? addDecimals(groups.map((s) => s.total)) : null;
    const times = [];
    for (let t = start; t < end; t += bucket) times.push(t);

    if (additive) this.dataset.total = total;
    else delete this.dataset.total;
    this._drawn = [groups, times, total];
    this._drawChart(groups, times, total);
    this._legend.replaceChildren(...groups.map((s) =>
      h('li', { part: 'legend-item' },
        h('span', { class: `swatch ${s.colour}`, 'aria-hidden': 'true' }),
        h('span', { text: s.label }),
        h('span', { class: 'muted num', text: additive ? plain(s.total) : `latest: ${s.latest}` }))));
    this._drawTable(groups, times, total);
    this._emit('meterline:update', {
      aggregation,
      total,
      startingAt: new Date(start).toISOString(),
      endingBefore: new Date(end).toISOString(),
      groups: groups.map(({ group, label, total: sum, latest }) => ({ group, label, total: sum, latest })),
      points,
    });
  }

  _label(t) {
    return (this._range.hourly ? FORMAT_HOUR : FORMAT_DAY).format(t);
  }

  _drawChart(groups, times, total) {
    const { hourly, days, additive, per } = this._range;
    const [W, H] = [clamp(this._width, 280, 4000), 260];
    const m = { top: 10, right: 10, bottom: 42, left: 56 };
    const [plotW, plotH] = [W - m.left - m.right, H - m.top - m.bottom];
    // Number() sizes the bars only; every number shown is the exact string
    const heights = (t) => groups.map((s) => Math.max(0, Number(s.quantities.get(t) ?? 0) || 0));
    // sums stack (one bar per bucket); other aggregations stand side by side
    const tallest = Math.max(0, ...times.map((t) => (additive
      ? heights(t).reduce((a, b) => a + b, 0) : Math.max(0, ...heights(t)))));
    const max = niceCeiling(tallest);
    const by = `by ${hourly ? 'hour' : 'day'}, last ${days} day${days === 1 ? '' : 's'} (UTC)`;
    const parts = groups.slice(0, 12)
      .map((s) => (additive ? `${s.label}: ${plain(s.total)}` : `${s.label}: latest ${s.latest}`)).join('; ');
    const summary = additive
      ? `Usage ${by}: total ${plain(total)}${parts ? `; ${parts}` : ''}.`
      : `Usage ${by}, ${per} per ${hourly ? 'hour' : 'day'}${parts ? `: ${parts}` : ''}.`;
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, part: 'chart', class: 'chart' });
    for (let i = 0; i <= 4; i += 1) { // y grid and labels
      const y = m.top + plotH - (plotH * i) / 4;
      chart.append(svg('line', { class: 'grid', x1: m.left, x2: W - m.right, y1: y, y2: y }),
        svg('text', { x: m.left - 6, y: y + 4, 'text-anchor': 'end', text: FORMAT_AXIS.format((max * i) / 4) }));
    }
    const step = plotW / Math.max(1, times.length);
    const every = Math.ceil(times.length / Math.max(2, Math.floor(plotW / 110)));
    const slot = additive ? step * 0.8 : (step * 0.8) / Math.max(1, groups.length);
    times.forEach((t, i) => {
      let y = m.top + plotH;
      heights(t).forEach((value, g) => {
        if (!value || !max) return;
        const height = (value / max) * plotH;
        const s = groups[g];
        const x = m.left + i * step + step * 0.1 + (additive ? 0 : g * slot);
        if (additive) y -= height;
        chart.append(svg('rect', {
          class: s.colour, x, y: additive ? y : m.top + plotH - height, width: Math.max(slot, 0.5), height,
        }, svg('title', { text: `${this._label(t)} · ${s.label}: ${plain(s.quantities.get(t))}` })));
      });
      if (i % every === 0) {
        chart.append(svg('text', { x: m.left + (i + 0.5) * step, y: m.top + plotH + 16, 'text-anchor': 'middle', text: this._label(t) }));
      }
    });
    chart.append(
      svg('line', { class: 'axis', x1: m.left, x2: W - m.right, y1: m.top + plotH, y2: m.top + plotH }),
      svg('text', { x: m.left + plotW / 2, y: H - 4, 'text-anchor': 'middle', text: `${hourly ? 'Hour' : 'Day'} (UTC)` }),
      svg('text', { x: 12, y: m.top + plotH / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${m.top + plotH / 2})`, text: 'Quantity' }),
    );
    if (!groups.length) {
      chart.append(svg('text', { x: m.left + plotW / 2, y: m.top + plotH / 2, 'text-anchor': 'middle', text: 'No usage in this period' }));
    }
    this._chart.replaceChildren(chart);
  }

  _drawTable(groups, times, total) {
    const { start, end, hourly, additive } = this._range;
    const rows = times.filter((t) => groups.some((s) => s.quantities.has(t)));
    const cell = (value) => h('td', { class: 'num', text: plain(value) });
    // totals (a Total column and row) only where buckets add up; else each group's latest
    this._table.replaceChildren(h('table', {},
      h('caption', { text: `Usage by ${hourly ? 'hour' : 'day'} (UTC), ${FORMAT_DATE.format(start)} – ${FORMAT_DATE.format(end - 1)}` }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: hourly ? 'Hour (UTC)' : 'Day (UTC)' }),
        groups.map((s) => h('th', { scope: 'col', class: 'num', text: s.label })),
        additive && h('th', { scope: 'col', class: 'num', text: 'Total' }))),
      h('tbody', {}, rows.length
        ? rows.map((t) => h('tr', {},
          h('th', { scope: 'row', text: this._label(t) }),
          groups.map((s) => cell(s.quantities.get(t) ?? (additive ? '0' : '—'))),
          additive && cell(addDecimals(groups.map((s) => s.quantities.get(t))))))
        : h('tr', {}, h('td', { colspan: groups.length + (additive ? 2 : 1), text: 'No usage in this period.' }))),
      h('tfoot', {}, additive
        ? h('tr', {}, h('th', { scope: 'row', text: 'Total' }), groups.map((s) => cell(s.total)), cell(total))
        : h('tr', {}, h('th', { scope: 'row', text: 'Latest' }), groups.map((s) => cell(s.latest))))));
  }
}

/** 1, 2, 2.5, 5 or 10 × a power of ten, at least `value` (1 for 0). */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((f) => f * power).find((v) => v >= value) ?? 10 * power;
}

// ── <meterline-draft-invoice>: the open draft invoices, live ─────────────────────────────

const INVOICE_CSS = `
.invoice + .invoice { margin-top: 1.25rem; }
.group { display: block; color: var(--_muted); font-size: .85em; font-weight: normal; }
tr.applied th, tr.applied td { color: var(--_ok); font-style: italic; }
tr.applied .kind { font-weight: 600; font-style: normal; }
tr.total th, tr.total td { font-weight: 700; border-bottom: 0; font-size: 1.05em; }
tfoot th { font-weight: 600; }
`;

const APPLIED_KIND = { CREDIT_APPLIED: 'Credit applied', COMMIT_APPLIED: 'Commit applied' };

export class MeterlineDraftInvoice extends MeterlineElement {
  static heading = 'Current invoice';
  static css = INVOICE_CSS;

  constructor() {
    super();
    this._content = h('div', { class: 'content' });
    this._announcer = h('div', { class: 'sr-only', 'aria-live': 'polite', 'aria-atomic': 'true', part: 'announcer' });
    this._body.append(this._content, this._announcer);
  }

  _start() {
    this._live(DRAFT_INVOICES_SUBSCRIPTION, { customerId: this.customerId },
      (data) => this._render(data.draftInvoiceUpdated ?? []));
  }

  _render(found) {
    const invoices = [...found].sort((a, b) => a.startingAt.localeCompare(b.startingAt));
    this._content.replaceChildren(...(invoices.length
      ? invoices.map((invoice) => this._invoice(invoice))
      : [h('p', { part: 'empty', class: 'muted', text: 'No open draft invoice.' })]));
    const currencies = new Set(invoices.map((i) => i.currency));
    if (invoices.length && currencies.size === 1) {
      this.dataset.total = addDecimals(invoices.map((i) => i.total));
      this.dataset.currency = invoices[0].currency;
    } else {
      delete this.dataset.total;
      delete this.dataset.currency;
    }
    const summary = invoices.map((i) => money(i.total, i.currency)).join(', ');
    if (this._summary !== undefined && summary !== this._summary) {
      this._announcer.textContent = summary ? `Draft invoice total now ${summary}.` : 'No open draft invoice.';
    }
    this._summary = summary;
    this._emit('meterline:update', { invoices, total: this.dataset.total ?? null, currency: this.dataset.currency ?? null });
  }

  _invoice(invoice) {
    const { currency } = invoice;
    const applied = (line) => line.type in APPLIED_KIND || isNegative(line.amount);
    const charges = invoice.lines.filter((line) => !applied(line));
    const credits = invoice.lines.filter(applied);
    const period = `${FORMAT_DATE.format(Date.parse(invoice.startingAt))} – ${FORMAT_DATE.format(Date.parse(invoice.endingBefore) - 1)}`;
    const amount = (value) => h('td', { class: 'num', text: money(value, currency) });
    const name = (line) => [line.name, groupText(line.group, true) && h('span', { class: 'group', text: groupText(line.group, true) })];
    return h('section', { part: 'invoice', class: 'invoice', 'data-currency': currency },
      h('table', {},
        h('caption', { text: `Draft invoice, ${period} (${currency})` }),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'Item' }), h('th', { scope: 'col', class: 'num', text: 'Quantity' }),
          h('th', { scope: 'col', class: 'num', text: 'Unit price' }), h('th', { scope: 'col', class: 'num', text: 'Amount' }))),
        h('tbody', {}, charges.length
          ? charges.map((line) => h('tr', { part: 'line', 'data-type': line.type },
            h('th', { scope: 'row' }, name(line)),
            h('td', { class: 'num', text: plain(line.quantity) }),
            line.unitPrice == null ? h('td', { class: 'num', 'aria-label': 'none', text: '—' }) : amount(line.unitPrice),
            amount(line.amount)))
          : h('tr', {}, h('td', { colspan: 4, class: 'muted', text: 'No charges yet in this period.' }))),
        h('tfoot', {},
          h('tr', { part: 'subtotal' }, h('th', { scope: 'row', colspan: 3, text: 'Subtotal' }), amount(invoice.subtotal)),
          credits.map((line) => h('tr', { part: 'line applied', class: 'applied', 'data-type': line.type },
            h('th', { scope: 'row', colspan: 3 },
              h('span', { class: 'kind', text: `${APPLIED_KIND[line.type] ?? 'Adjustment'}: ` }), name(line)),
            amount(line.amount))),
          h('tr', { class: 'total' },
            h('th', { scope: 'row', colspan: 3, text: 'Total' }),
            h('td', { class: 'num' }, h('span', {
              part: 'total', 'data-testid': 'total', 'data-value': plain(invoice.total), 'data-currency': currency,
              text: money(invoice.total, currency),
            }))))));
  }
}

// ── <meterline-budget>: budget alerts with their live state, create and archive ─────────

const BUDGET_CSS = `
.alerts { list-style: none; padding: 0; margin: 0 0 1rem; }
.alert { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; padding: .6rem 0; border-bottom: 1px solid var(--_border); }
.alert .main { flex: 1 1 12rem; display: flex; flex-direction: column; }
.badge { display: inline-flex; gap: .3rem; align-items: center; border-radius: 999px; padding: .1rem .6rem; font-size: .85rem; font-weight: 600; border: 1px solid currentColor; }
.badge[data-state="IN_ALARM"] { background: var(--_danger); border-color: var(--_danger); color: #fff; }
.badge[data-state="OK"] { color: var(--_ok); }
.badge[data-state="EVALUATING"] { color: var(--_muted); }
.groups { list-style: none; padding: 0; margin: .25rem 0 0; font-size: .85rem; display: flex; flex-wrap: wrap; gap: .25rem .75rem; }
fieldset { border: 1px solid var(--_border); border-radius: var(--_radius); padding: .75rem 1rem 1rem; margin: 0; }
legend { font-weight: 600; padding: 0 .25rem; }
.fields { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: .75rem; align-items: start; }
.field { display: flex; flex-direction: column; gap: .25rem; }
.actions { margin-top: .75rem; }
`;

const TYPE_LABEL = {
  SPEND_THRESHOLD_REACHED: 'Spend',
  USAGE_THRESHOLD_REACHED: 'Usage',
  INVOICE_TOTAL_REACHED: 'Invoice total',
  LOW_CREDIT_BALANCE_REACHED: 'Low credit balance',
  LOW_COMMIT_BALANCE_REACHED: 'Low commit balance',
};
const STATE_LABEL = { IN_ALARM: ['⚠', 'In alarm'], OK: ['✓', 'OK'], EVALUATING: ['…', 'Evaluating'] };
const STATE_RANK = ['IN_ALARM', 'EVALUATING', 'OK']; // the worst state first

/** One state for the customer: the worst of its group states; none yet is EVALUATING. */
function overallState(statuses) {
  return STATE_RANK.find((state) => statuses.some((s) => s.state === state)) ?? statuses[0]?.state ?? 'EVALUATING';
}

function badge(state) {
  const [icon, text] = STATE_LABEL[state] ?? ['', state];
  return h('span', { part: `badge badge-${state.toLowerCase().replace(/_/g, '-')}`, class: 'badge', 'data-state': state },
    h('span', { 'aria-hidden': 'true', text: icon }), text);
}

export class MeterlineBudget extends MeterlineElement {
  static get observedAttributes() {
    return [...COMMON_ATTRIBUTES, 'metric-id'];
  }

  static heading = 'Budget alerts';
  static css = BUDGET_CSS;

  constructor() {
    super();
    this._alerts = [];
    this._archived = new Set();
    this._list = h('ul', { part: 'list', class: 'alerts' });
    this._empty = h('p', { part: 'empty', class: 'muted', text: 'No budget alerts yet.' });
    this._notice = h('p', { class: 'sr-only', 'aria-live': 'polite', 'aria-atomic': 'true', part: 'announcer' });
    this._states = null; // alert id → state last shown (null: nothing shown yet)
    this._statesFor = null; // … for this customer
    const field = (id, label, control, hint) => h('div', { class: 'field', part: 'field' },
      h('label', { for: id, text: label }), control, hint && h('span', { id: `${id}-hint`, class: 'hint', text: hint }));
    this._name = h('input', { id: 'ml-name', name: 'name', maxlength: 200, autocomplete: 'off', required: true, part: 'input' });
    this._usageOption = h('option', { value: 'USAGE_THRESHOLD_REACHED', text: 'Usage' });
    this._type = h('select', { id: 'ml-type', name: 'alertType', part: 'input' },
      h('option', { value: 'SPEND_THRESHOLD_REACHED', text: 'Spend' }),
      h('option', { value: 'INVOICE_TOTAL_REACHED', text: 'Invoice total' }));
    this._threshold = h('input', {
      id: 'ml-threshold', name: 'threshold', inputmode: 'decimal', autocomplete: 'off', required: true,
      'aria-describedby': 'ml-threshold-hint', part: 'input',
    });
    this._submit = h('button', { type: 'submit', part: 'submit', text: 'Create alert' });
    this._form = h('form', { part: 'form', novalidate: true, onsubmit: (event) => this._create(event) },
      h('fieldset', {}, h('legend', { text: 'New budget alert' }),
        h('div', { class: 'fields' },
          field('ml-name', 'Name', this._name),
          field('ml-type', 'Type', this._type),
          field('ml-threshold', 'Threshold', this._threshold,
            'A decimal number, e.g. 100 or 250.50 (spend and invoice totals in the invoice currency).')),
        h('div', { class: 'actions' }, this._submit)));
    this._body.append(this._list, this._empty, this._form, this._notice);
  }

  _start() {
    // usage alerts need a metric: offer them only with a metric-id attribute
    if (this.getAttribute('metric-id')) this._type.append(this._usageOption);
    else this._usageOption.remove();
    if (this._statesFor !== this.customerId) [this._states, this._statesFor] = [null, this.customerId];
    this._live(ALERTS_SUBSCRIPTION, { customerId: this.customerId }, (data) => {
      this._alerts = data.alertStateChanged ?? [];
      this._renderAlerts();
    });
  }

  _renderAlerts() {
    const focused = this.root.activeElement?.closest?.('[data-alert-id]')?.dataset.alertId;
    const me = this.customerId;
    const shown = this._alerts.filter((a) => a.customerId === me && !a.archivedAt && !this._archived.has(a.id));
    this._list.replaceChildren(...shown.map((alert) => this._item(alert, me)));
    this._empty.hidden = shown.length > 0;
    if (focused) this._archiveButton(focused)?.focus(); // keep keyboard focus across pushes
    this._announceStates(shown, me);
    this._emit('meterline:update', { alerts: shown });
  }

  /** Announce, politely, an alert newly in alarm or back to OK (not those on first show). */
  _announceStates(shown, me) {
    const states = new Map(shown.map((alert) => [alert.id, overallState(this._statuses(alert, me))]));
    if (this._states) {
      const changes = [];
      for (const alert of shown) {
        const [before, now] = [this._states.get(alert.id), states.get(alert.id)];
        if (now === before) continue;
        if (now === 'IN_ALARM') changes.push(`Alert ${alert.name} is now in alarm.`);
        else if (now === 'OK' && before === 'IN_ALARM') changes.push(`Alert ${alert.name} is back to OK.`);
      }
      if (changes.length) this._notice.textContent = changes.join(' ');
    }
    this._states = states;
  }

  _statuses(alert, me) {
    return (alert.statuses ?? []).filter((s) => s.customerId === me);
  }

  _archiveButton(id) {
    return [...this._list.children].find((li) => li.dataset.alertId === id)?.querySelector('button');
  }

  _item(alert, me) {
    const statuses = this._statuses(alert, me);
    const state = overallState(statuses);
    const scope = alert.groupKey ? ` · per ${alert.groupKey}` : alert.groupValues ? ` · ${groupText(alert.groupValues, true)}` : '';
    const grouped = statuses.filter((s) => groupText(s.group));
    return h('li', {
      part: `alert alert-${state.toLowerCase().replace(/_/g, '-')}`, class: 'alert', 'data-alert-id': alert.id, 'data-state': state,
    },
    h('div', { class: 'main' },
      h('strong', { class: 'name', text: alert.name }),
      h('span', { class: 'muted', text: `${TYPE_LABEL[alert.alertType] ?? alert.alertType} threshold: ${plain(alert.threshold)}${scope}` }),
      grouped.length > 0 && h('ul', { class: 'groups' },
        grouped.map((s) => h('li', {}, `${groupText(s.group, true)}: `, badge(s.state))))),
    badge(state),
    h('button', {
      type: 'button', class: 'secondary', part: 'archive-button', 'aria-label': `Archive alert ${alert.name}`,
      text: 'Archive', onclick: (event) => this._archive(alert, event.currentTarget),
    }));
  }

  _invalid(control, message) {
    this._showError([{ message, extensions: { code: 'VALIDATION' } }], 'action');
    this._markInvalid(control);
  }

  /** Mark `control` invalid, described by the error region (after its hint), and focus it. */
  _markInvalid(control) {
    const hint = control === this._threshold ? 'ml-threshold-hint ' : '';
    control.setAttribute('aria-invalid', 'true');
    control.setAttribute('aria-describedby', `${hint}${this._error.id}`);
    control.focus();
  }

  _unmarkFields() {
    for (const control of [this._name, this._threshold]) {
      control.removeAttribute('aria-invalid');
      if (control === this._threshold) control.setAttribute('aria-describedby', 'ml-threshold-hint');
      else control.removeAttribute('aria-describedby');
    }
  }

  // a field stays marked only while the error region shows the form's error
  _showError(errors, source) {
    if (source !== 'action') this._unmarkFields();
    super._showError(errors, source);
  }

  _clearError(source) {
    if (!source || this._errorSource === source) this._unmarkFields();
    super._clearError(source);
  }

  async _create(event) {
    event.preventDefault();
    if (this._submit.getAttribute('aria-disabled') === 'true') return; // a request is running
    this._unmarkFields();
    const name = this._name.value.trim();
    const threshold = this._threshold.value.trim();
    if (!name) return this._invalid(this._name, 'Enter a name for the alert.');
    if (!THRESHOLD_INPUT.test(threshold)) {
      return this._invalid(this._threshold, 'The threshold must be a decimal number, such as 100 or 250.50.');
    }
    const input = { name, alertType: this._type.value, threshold, customerId: this.customerId };
    if (input.alertType === 'USAGE_THRESHOLD_REACHED') input.billableMetricId = this.getAttribute('metric-id');
    this._submit.setAttribute('aria-disabled', 'true');
    try {
      const { createAlert: created } = await this._request(CREATE_ALERT_MUTATION, { input });
      this._clearError('action');
      // shown at once (state EVALUATING); the subscription then pushes its state
      if (!this._alerts.some((a) => a.id === created.id)) this._alerts = [...this._alerts, created];
      this._renderAlerts();
      this._form.reset();
      this._notice.textContent = `Alert ${created.name} created.`;
      this._emit('meterline:alert-created', { alert: created });
    } catch (err) {
      const errors = errorsOf(err);
      this._showError(errors, 'action');
      // a VALIDATION error names its field ("threshold"): mark that control
      const field = String(errors.map((e) => e.extensions?.field).find(Boolean) ?? '').split('.').pop();
      const control = { name: this._name, threshold: this._threshold }[field];
      if (control) this._markInvalid(control);
    } finally {
      this._submit.removeAttribute('aria-disabled');
    }
    return undefined;
  }

  async _archive(alert, button) {
    if (button.getAttribute('aria-disabled') === 'true') return;
    button.setAttribute('aria-disabled', 'true');
    const items = [...this._list.children];
    const index = items.findIndex((li) => li.dataset.alertId === alert.id);
    try {
      await this._request(ARCHIVE_ALERT_MUTATION, { id: alert.id });
      this._clearError('action');
      this._archived.add(alert.id); // archiving may push nothing: drop it here
      this._renderAlerts();
      const next = this._list.children[Math.min(index, this._list.children.length - 1)];
      (next?.querySelector('button') ?? this._name).focus();
      this._notice.textContent = `Alert ${alert.name} archived.`;
      this._emit('meterline:alert-archived', { id: alert.id });
    } catch (err) {
      this._showError(errorsOf(err), 'action');
      button.removeAttribute('aria-disabled');
    }
  }
}

// ── Registration ─────────────────────────────────────────────────────────────────────────

const ELEMENTS = {
  'meterline-usage': MeterlineUsage,
  'meterline-draft-invoice': MeterlineDraftInvoice,
  'meterline-budget': MeterlineBudget,
};

/** Define the three custom elements (those not yet defined); called on import. */
export function defineMeterlineElements(registry = globalThis.customElements) {
  if (!registry) return;
  for (const [name, element] of Object.entries(ELEMENTS)) {
    if (!registry.get(name)) registry.define(name, element);
  }
}

defineMeterlineElements();
