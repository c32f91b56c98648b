// Plain `fetch` helpers for Meterline's GraphQL API (browser or Node 18+), no library.
//
// Use them with a *customer token* (`ml_ct_…`) that your backend minted for the logged-in
// user (see ../server/): it sees one customer and expires. Never send an API key from a
// browser. Money and quantities (`Decimal`) are strings ("12.50"): keep them strings.
//
//   const { token } = await (await fetch('/api/meterline-token')).json();
//   const drafts = await getDraftInvoices(ENDPOINT, token, customerId);
//   console.log(drafts[0].total, drafts[0].currency); // "41.20" "USD"
//
// For live updates, subscribe over the WebSocket (see ../react/client.js).

/** A GraphQL error from Meterline; `code` is its `extensions.code` (`UNAUTHENTICATED`, …). */
export class MeterlineError extends Error {
  constructor(message, { code, field, errors, status } = {}) {
    super(message);
    this.name = 'MeterlineError';
    this.code = code; // UNAUTHENTICATED (expired token: mint a new one), FORBIDDEN, NOT_FOUND, VALIDATION…
    this.field = field; // the input field a VALIDATION error names
    this.errors = errors; // every error of the answer
    this.status = status; // the HTTP status
  }
}

/**
 * POST `{ query, variables }` to `endpoint` (`https://…/graphql`) with the token; resolves to
 * `data`, or throws a MeterlineError carrying the first error's `extensions.code`.
 */
export async function graphql(endpoint, token, query, variables = {}) {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query, variables }),
  });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new MeterlineError(`Meterline answered ${response.status} without JSON`, {
      status: response.status,
    });
  }
  if (body.errors && body.errors.length > 0) {
    const [first] = body.errors;
    const extensions = first.extensions || {};
    throw new MeterlineError(first.message, {
      code: extensions.code,
      field: extensions.field,
      errors: body.errors,
      status: response.status,
    });
  }
  if (!response.ok || !body.data) {
    throw new MeterlineError(`Meterline answered ${response.status}`, { status: response.status });
  }
  return body.data;
}

// The operations, word for word those of ../operations/*.graphql (a test keeps them equal).

export const DRAFT_INVOICES = /* GraphQL */ `
  query DraftInvoices($customerId: ID!) {
    customer(id: $customerId) {
      id
      draftInvoices {
        contractId
        customerId
        currency
        startingAt
        endingBefore
        status
        subtotal
        total
        lateEvents
        lines {
          type
          productId
          name
          quantity
          unitPrice
          amount
          group
          startingAt
          endingBefore
        }
        unratedUsage {
          productId
          group
          quantity
          reason
        }
      }
    }
  }
`;

export const USAGE = /* GraphQL */ `
  query Usage(
    $customerId: ID!
    $billableMetricId: ID!
    $startingAt: DateTime!
    $endingBefore: DateTime!
    $windowSize: UsageWindow! = DAY
    $groupKey: [String!]
  ) {
    customer(id: $customerId) {
      id
      usage(
        billableMetricId: $billableMetricId
        startingAt: $startingAt
        endingBefore: $endingBefore
        windowSize: $windowSize
        groupKey: $groupKey
      ) {
        startingAt
        endingBefore
        group
        quantity
      }
    }
  }
`;

export const BUDGET_ALERTS = /* GraphQL */ `
  query BudgetAlerts($customerId: ID!) {
    customer(id: $customerId) {
      id
      alerts {
        id
        name
        alertType
        threshold
        customerId
        billableMetricId
        groupKey
        groupValues
        archivedAt
        statuses {
          customerId
          group
          state
        }
      }
    }
  }
`;

export const CREATE_BUDGET_ALERT = /* GraphQL */ `
  mutation CreateBudgetAlert($input: CreateAlertInput!) {
    createAlert(input: $input) {
      id
      name
      alertType
      threshold
      customerId
      billableMetricId
      groupKey
      groupValues
      archivedAt
      statuses {
        customerId
        group
        state
      }
    }
  }
`;

/** The customer's draft invoices (one per open period of each live contract). */
export async function getDraftInvoices(endpoint, token, customerId) {
  const data = await graphql(endpoint, token, DRAFT_INVOICES, { customerId });
  return data.customer.draftInvoices;
}

/**
 * A metric's usage points `{ startingAt, endingBefore, group, quantity }` (empty buckets
 * left out): `startingAt`/`endingBefore` are ISO date-times with an offset (`Date` objects
 * are converted), `windowSize` is `'DAY'` (at most 366 days) or `'HOUR'` (at most 31 days),
 * `groupKey` a group key of the metric (`'model'` or `['region', 'model']`) or null.
 */
export async function getUsage(
  endpoint,
  token,
  customerId,
  { billableMetricId, startingAt, endingBefore, windowSize = 'DAY', groupKey = null }
) {
  const when = (value) => (value instanceof Date ? value.toISOString() : value);
  const data = await graphql(endpoint, token, USAGE, {
    customerId,
    billableMetricId,
    startingAt: when(startingAt),
    endingBefore: when(endingBefore),
    windowSize,
    groupKey: groupKey == null ? null : [].concat(groupKey),
  });
  return data.customer.usage;
}

/** The live alerts watching the customer, with its state in each (`statuses`). */
export async function getBudgetAlerts(endpoint, token, customerId) {
  const data = await graphql(endpoint, token, BUDGET_ALERTS, { customerId });
  return data.customer.alerts;
}

/**
 * Create a spend (default), usage or invoice-total alert for the customer. `threshold` is a
 * decimal string ("250.00"); a JavaScript number is refused unless it is an integer.
 */
export async function createBudgetAlert(
  endpoint,
  token,
  customerId,
  {
    name,
    threshold,
    alertType = 'SPEND_THRESHOLD_REACHED',
    billableMetricId = null,
    groupKey = null,
    groupValues = null,
    uniquenessKey = null,
  }
) {
  if (typeof threshold === 'number' && !Number.isSafeInteger(threshold)) {
    throw new TypeError('pass the threshold as a decimal string ("12.50"), not a float');
  }
  const input = {
    name,
    alertType,
    threshold: String(threshold),
    customerId,
    billableMetricId,
    groupKey,
    groupValues,
    uniquenessKey,
  };
  const data = await graphql(endpoint, token, CREATE_BUDGET_ALERT, { input });
  return data.createAlert;
}
