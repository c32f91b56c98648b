// An urql client for Meterline, for the browser: queries and mutations over HTTP
// (POST /graphql), subscriptions over a WebSocket (/graphql, protocol graphql-transport-ws,
// spoken by the `graphql-ws` library).
//
// The browser only ever holds a *customer token* (`ml_ct_…`): it sees one customer and
// expires (1 hour by default). Your backend mints it for its logged-in user (see
// ../server/) and hands it over with its expiry. Never put an API key in browser code.
//
//   const tokens = createTokenSource(async () => {
//     const response = await fetch('/api/meterline-token', { credentials: 'same-origin' });
//     return response.json(); // { token, expiresAt }
//   });
//   const { client } = createMeterlineClient({
//     url: 'https://billing.example.com/graphql',
//     tokens,
//   });
//   // <Provider value={client}> … </Provider>   (Provider from 'urql')

import { Client, cacheExchange, fetchExchange, mapExchange, subscriptionExchange } from 'urql';
import { createClient as createWSClient } from 'graphql-ws';

/** The `extensions.code` of each GraphQL error of an urql `CombinedError` (or []). */
export function errorCodes(error) {
  if (!error) return [];
  const errors = Array.isArray(error.networkError) ? error.networkError : error.graphQLErrors;
  return (errors || []).map((e) => e && e.extensions && e.extensions.code).filter(Boolean);
}

/** True when Meterline refused the credential (missing, revoked or expired token). */
export function isUnauthenticated(error) {
  return errorCodes(error).includes('UNAUTHENTICATED');
}

/** At most one token fetch per this many ms (a short-lived token, a refused one, a failing
 * endpoint): never a fetch per request. */
const MIN_FETCH_INTERVAL_MS = 5000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A ping left without a pong this long closes the socket (4499, retried). */
const PONG_TIMEOUT_MS = 10_000;

/**
 * A cached customer token that renews itself.
 *
 * `fetchToken()` asks *your* backend (never Meterline directly: that needs an admin key)
 * for `{ token, expiresAt }` (`expiresAt` an ISO 8601 date, as createCustomerToken answers;
 * required). The token is reused until `refreshBeforeSeconds` before it expires (and at
 * least 5 s); then (or after `invalidate()`) the next `get()` fetches a new one. Fetches are
 * at least 5 s apart: within that, `get()` answers the current token while it has not
 * expired, else waits. Listeners added with `subscribe` hear of each new token (the client
 * reconnects its WebSocket then, so live subscriptions move to the new token before the old
 * one expires).
 */
export function createTokenSource(fetchToken, { refreshBeforeSeconds = 60 } = {}) {
  let current = null; // { token, expiresAt: ms, refreshAt: ms }
  let pending = null;
  let timer = null;
  let lastFetchAt = -Infinity;
  const listeners = new Set();

  const fresh = () => current !== null && Date.now() < current.refreshAt;

  function schedule() {
    clearTimeout(timer);
    if (current === null || listeners.size === 0) return;
    // Renew ahead of expiry, so that open subscriptions are never cut off.
    timer = setTimeout(
      () => {
        current = null;
        get().catch(() => {}); // a failure surfaces on the next get()
      },
      Math.max(current.refreshAt - Date.now(), 1000)
    );
  }

  function fetchNow() {
    lastFetchAt = Date.now();
    return Promise.resolve()
      .then(fetchToken)
      .then((answer) => {
        const { token, expiresAt } = answer || {};
        if (typeof token !== 'string' || !token) throw new Error('no customer token');
        const expires = typeof expiresAt === 'string' ? Date.parse(expiresAt) : NaN;
        if (!Number.isFinite(expires)) {
          throw new Error(
            `the token endpoint must answer expiresAt, an ISO 8601 date (as createCustomerToken does), not ${JSON.stringify(expiresAt)}`
          );
        }
        const refreshAt = Math.max(
          Date.now() + MIN_FETCH_INTERVAL_MS,
          expires - refreshBeforeSeconds * 1000
        );
        current = { token, expiresAt: expires, refreshAt };
        schedule();
        listeners.forEach((listener) => listener(token));
        return token;
      });
  }

  function get() {
    if (fresh()) return Promise.resolve(current.token);
    if (pending === null) {
      const wait = lastFetchAt + MIN_FETCH_INTERVAL_MS - Date.now();
      if (wait > 0 && current !== null && Date.now() < current.expiresAt) {
        return Promise.resolve(current.token); // fetched moments ago and still valid
      }
      pending = (wait > 0 ? sleep(wait) : Promise.resolve()).then(fetchNow).finally(() => {
        pending = null;
      });
    }
    return pending;
  }

  return {
    get,
    /** Forget the token (after an UNAUTHENTICATED answer): the next get() fetches one. */
    invalidate() {
      current = null;
      clearTimeout(timer);
    },
    subscribe(listener) {
      listeners.add(listener);
      schedule();
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) clearTimeout(timer);
      };
    },
  };
}

/** `https://host/graphql` → `wss://host/graphql` (relative URLs resolve against the page). */
function webSocketURL(url) {
  const base = typeof window !== 'undefined' ? window.location.href : undefined;
  const resolved = new URL(url, base);
  resolved.protocol = resolved.protocol === 'http:' ? 'ws:' : 'wss:';
  return resolved.toString();
}

/**
 * The urql client.
 *
 * - `url`: Meterline's GraphQL endpoint (`https://…/graphql`); `wsUrl` defaults to the same
 *   address over `ws(s)://`.
 * - `tokens`: a `createTokenSource(...)`, or give `getToken` (a function returning the
 *   customer token or a promise of it; called before every request and on every
 *   (re)connection, so it may return a refreshed token) and optionally `onUnauthenticated`.
 *
 * Returns `{ client, restart, dispose }`: `restart()` reconnects the WebSocket with a fresh
 * token (active subscriptions resume on the new connection).
 */
export function createMeterlineClient({
  url,
  wsUrl,
  tokens,
  getToken = tokens && tokens.get,
  onUnauthenticated = tokens && tokens.invalidate,
  webSocketImpl,
}) {
  if (typeof getToken !== 'function') throw new TypeError('createMeterlineClient needs getToken');

  // graphql-ws's recipe for a graceful restart: close the socket with a retryable code; the
  // library reconnects (calling connectionParams, hence getToken, again) and re-subscribes.
  let socket = null;
  let socketToken = null; // the token the open socket authenticated with
  function restart() {
    if (socket !== null && socket.readyState === 1 /* OPEN */) socket.close(4205, 'Client Restart');
  }

  // graphql-ws's recipe for a ping timeout: `keepAlive` pings every 20 s; a ping left without
  // a pong for 10 s means a dead connection (a laptop woken up, a dropped network): close it
  // with a retryable code, and the library reconnects and re-subscribes.
  let pongTimer = null;
  function onPing(received) {
    if (received) return; // the server's ping: graphql-ws answers it
    clearTimeout(pongTimer);
    const pinged = socket;
    pongTimer = setTimeout(() => {
      if (pinged !== null && pinged.readyState === 1 /* OPEN */) pinged.close(4499, 'Ping timeout');
    }, PONG_TIMEOUT_MS);
  }
  function onPong(received) {
    if (received) clearTimeout(pongTimer);
  }

  const wsClient = createWSClient({
    url: wsUrl || webSocketURL(url),
    webSocketImpl,
    lazy: true,
    // Meterline reads the credential from the connection_init payload.
    connectionParams: async () => {
      socketToken = await getToken();
      return { authorization: `Bearer ${socketToken}` };
    },
    keepAlive: 20_000,
    // Retried: lost connections, 4403 (a refused token: a fresh one is fetched first), 4499.
    // graphql-ws itself gives up on 4400, 4401, 4406, 4409, 4429, 4500 (fatal).
    retryAttempts: Infinity,
    shouldRetry: () => true,
    // capped exponential backoff (1 s doubling to 30 s) with jitter
    retryWait: (retries) =>
      sleep(Math.min(30000, 1000 * 2 ** retries) * (0.5 + Math.random() / 2)),
    on: {
      opened: (opened) => {
        socket = opened;
      },
      ping: onPing,
      pong: onPong,
      closed: (event) => {
        clearTimeout(pongTimer);
        socket = null;
        socketToken = null;
        // 4403: the token in connection_init was refused (expired or revoked).
        if (event && event.code === 4403 && onUnauthenticated) onUnauthenticated();
      },
    },
  });

  const client = new Client({
    url,
    // Meterline serves queries on POST /graphql only.
    preferGetMethod: false,
    requestPolicy: 'cache-and-network',
    fetch: async (input, init = {}) => {
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${await getToken()}`);
      return globalThis.fetch(input, { ...init, headers });
    },
    exchanges: [
      mapExchange({
        onError(error, operation) {
          if (!isUnauthenticated(error)) return;
          if (onUnauthenticated) onUnauthenticated(); // forget the token: the next one is fresh
          // A subscription refused mid-stream: its socket still holds the old token.
          if (operation.kind === 'subscription') restart();
        },
      }),
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              const unsubscribe = wsClient.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });

  // A renewed token: move the open socket (and its subscriptions) over to it.
  const stopListening =
    tokens && tokens.subscribe
      ? tokens.subscribe((token) => {
          if (socketToken !== null && token !== socketToken) restart();
        })
      : null;

  return {
    client,
    restart,
    dispose() {
      if (stopListening) stopListening();
      return wsClient.dispose();
    },
  };
}
