// Mint a Meterline customer token on your backend (Node 18+, built-in fetch), for your
// logged-in user's browser.
//
// A customer token (`ml_ct_…`) sees one customer only and expires (`ttlSeconds`: 1 hour by
// default, at most 1 day). It is minted with an *admin* API key, which stays on this server:
// read it from the environment (METERLINE_ADMIN_KEY) and never put it in a bundle, HTML or
// a response. The browser gets the token and its expiry only, and asks again when Meterline
// answers UNAUTHENTICATED (expired).
//
//   // METERLINE_ADMIN_KEY=… METERLINE_GRAPHQL_URL=https://billing.example.com/graphql
//   import { mintCustomerToken } from './mintToken.mjs';
//   const { token, expiresAt } = await mintCustomerToken(customerId, { ttlSeconds: 3600 });
//
// Express (or node:http) endpoint for the logged-in user:
//
//   app.get('/api/meterline-token', tokenHandler(async (req) => req.session.meterlineCustomerId));

export const CREATE_CUSTOMER_TOKEN = /* GraphQL */ `
  mutation CreateCustomerToken($input: CreateCustomerTokenInput!) {
    createCustomerToken(input: $input) {
      token
      customerId
      expiresAt
    }
  }
`;

export class MeterlineError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'MeterlineError';
    this.code = code; // extensions.code: NOT_FOUND, UNAUTHENTICATED, FORBIDDEN, VALIDATION…
  }
}

/** `{ token, customerId, expiresAt }` of a new customer token for `customerId`. */
export async function mintCustomerToken(
  customerId,
  {
    ttlSeconds = 3600,
    endpoint = process.env.METERLINE_GRAPHQL_URL || 'http://127.0.0.1:8000/graphql',
    adminKey = process.env.METERLINE_ADMIN_KEY,
  } = {}
) {
  if (!adminKey) throw new Error('set METERLINE_ADMIN_KEY (an API key with scope admin)');
  if (!(Number.isInteger(ttlSeconds) && ttlSeconds >= 1 && ttlSeconds <= 86400)) {
    throw new RangeError('ttlSeconds is 1 to 86400 (a token lives at most one day)');
  }
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` },
    body: JSON.stringify({
      query: CREATE_CUSTOMER_TOKEN,
      variables: { input: { customerId, ttlSeconds } },
    }),
    signal: AbortSignal.timeout(10000),
  });
  const body = await response.json().catch(() => {
    throw new Error(`Meterline answered ${response.status} without JSON`);
  });
  if (body.errors && body.errors.length > 0) {
    const [first] = body.errors;
    throw new MeterlineError(first.message, first.extensions && first.extensions.code);
  }
  if (!response.ok) throw new Error(`Meterline answered ${response.status}`);
  return body.data.createCustomerToken;
}

/**
 * A request handler (Express or node:http) answering the logged-in user's customer token.
 * `customerOf(req)` returns the user's Meterline customer id from *your* session, or null
 * (answered 401). Never take the customer id from the request itself (query, header, body):
 * anyone could then mint a token for any customer.
 */
export function tokenHandler(customerOf, options = {}) {
  return async (req, res) => {
    const send = (status, payload) => {
      res.statusCode = status;
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', 'no-store');
      res.end(JSON.stringify(payload));
    };
    let customerId;
    try {
      customerId = await customerOf(req);
    } catch (error) {
      // Your session lookup failed: log it here, tell the browser nothing about it.
      console.error('meterline token: customerOf failed', error);
      return send(500, { error: 'internal error' });
    }
    if (!customerId) return send(401, { error: 'log in first' });
    try {
      return send(200, await mintCustomerToken(customerId, options));
    } catch (error) {
      // Do not pass Meterline's message on: it is about your admin key, not the user.
      console.error('meterline token: minting failed', error);
      return send(502, { error: 'billing unavailable', code: error.code });
    }
  };
}
