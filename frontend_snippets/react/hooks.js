// React hooks for a customer's live billing data, on urql (see ./client.js for the client).
//
// Each hook runs its query over HTTP (a fast first render) and keeps the answer live with
// the matching subscription: Meterline pushes the current value on subscribe, then a new one
// after every change (at most one push per 250 ms). The newest of the two is returned.
//
// Decimal fields (money, quantities, thresholds) are strings: show them as they are and
// never turn them into JavaScript numbers (0.1 + 0.2 !== 0.3).

import { useCallback, useEffect, useRef, useState } from 'react';
import { useMutation, useQuery, useSubscription } from 'urql';

import { errorCodes, isUnauthenticated } from './client.js';
import {
  ALERT_STATE_CHANGED,
  ARCHIVE_ALERT,
  BUDGET_ALERTS,
  CREATE_BUDGET_ALERT,
  DRAFT_INVOICE_UPDATED,
  DRAFT_INVOICES,
  USAGE,
  USAGE_UPDATED,
} from './operations.js';

/** The alert types a customer token may create. */
export const BUDGET_ALERT_TYPES = [
  'SPEND_THRESHOLD_REACHED',
  'USAGE_THRESHOLD_REACHED',
  'INVOICE_TOTAL_REACHED',
];

// Error codes that would only fail again: the error is shown, not retried.
const FINAL_CODES = ['FORBIDDEN', 'NOT_FOUND', 'VALIDATION', 'BAD_REQUEST'];
// WebSocket close codes graphql-ws gives up on (fatal): not retried either.
const FATAL_CLOSE_CODES = [4400, 4401, 4406, 4409, 4429, 4500];

// Errors worth re-subscribing after: an expired token (the client fetches a new one), a lost
// connection, INTERNAL or any unknown error. FORBIDDEN, NOT_FOUND, VALIDATION, BAD_REQUEST
// and a fatal close would only fail again.
function retryable(error) {
  if (isUnauthenticated(error)) return true;
  const closeCode = error.networkError && error.networkError.code;
  if (typeof closeCode === 'number' && FATAL_CLOSE_CODES.includes(closeCode)) return false;
  return !errorCodes(error).some((code) => FINAL_CODES.includes(code));
}

/** An Error for a failed mutation, with Meterline's `code` (and `field` for VALIDATION). */
function meterlineError(combined) {
  const first = (combined.graphQLErrors || [])[0];
  const error = new Error(first ? first.message : combined.message);
  error.code = first && first.extensions ? first.extensions.code : undefined;
  error.field = first && first.extensions ? first.extensions.field : undefined;
  error.cause = combined;
  return error;
}

/**
 * A query kept live by a subscription: `{ data, fetching, error, refetch }`, `data` being
 * `fromQuery(queryData)` or `fromSubscription(pushData)`, whichever came last.
 */
function useLive({ query, subscription, variables, pause, fromQuery, fromSubscription }) {
  const key = JSON.stringify(variables);
  const [queried, reexecuteQuery] = useQuery({ query, variables, pause });
  const [pushed, reexecuteSubscription] = useSubscription({
    query: subscription,
    variables,
    pause,
  });
  const [latest, setLatest] = useState({ key: null, value: undefined });

  useEffect(() => {
    const value = queried.data ? fromQuery(queried.data) : undefined;
    if (value != null) setLatest({ key, value });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [queried.data]);

  useEffect(() => {
    const value = pushed.data ? fromSubscription(pushed.data) : undefined;
    if (value != null && !pushed.error) setLatest({ key, value });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [pushed.data, pushed.error]);

  const refetch = useCallback(
    () => reexecuteQuery({ requestPolicy: 'network-only' }),
    [reexecuteQuery]
  );

  // A subscription that ended with a retryable error is started again, with capped
  // exponential backoff and jitter (1 s, 2 s, 4 s … 30 s, each × 0.5–1); a push resets it.
  const attempts = useRef(0);
  useEffect(() => {
    if (pause) return undefined;
    if (!pushed.error) {
      if (pushed.data) attempts.current = 0;
      return undefined;
    }
    if (!retryable(pushed.error)) return undefined;
    const wait = Math.min(30000, 1000 * 2 ** attempts.current) * (0.5 + Math.random() / 2);
    attempts.current += 1;
    const timer = setTimeout(() => {
      reexecuteQuery({ requestPolicy: 'network-only' });
      reexecuteSubscription();
    }, wait);
    return () => clearTimeout(timer);
  }, [pause, pushed.data, pushed.error, reexecuteQuery, reexecuteSubscription]);

  const data = latest.key === key ? latest.value : undefined;
  const error =
    data !== undefined && pushed.data && !pushed.error ? undefined : pushed.error || queried.error;
  return {
    data,
    fetching: !pause && data === undefined && !error,
    error,
    refetch,
  };
}

// ---------------------------------------------------------------------------------------
// Draft invoices

/**
 * The customer's draft invoices (one per open period of each live contract), live.
 *
 * Returns `{ drafts, draft, fetching, error, refetch }`; `draft` is the draft of the
 * period running now (else the last one), `null` when there is none. Each draft has
 * `currency`, `subtotal`, `total` (decimal strings), `lines` and `unratedUsage`.
 */
export function useDraftInvoice(customerId) {
  const { data: drafts, ...live } = useLive({
    query: DRAFT_INVOICES,
    subscription: DRAFT_INVOICE_UPDATED,
    variables: { customerId },
    pause: !customerId,
    fromQuery: (data) => (data.customer ? data.customer.draftInvoices : undefined),
    fromSubscription: (data) => data.draftInvoiceUpdated,
  });
  return { ...live, drafts, draft: drafts ? currentDraft(drafts) : undefined };
}

function currentDraft(drafts) {
  if (drafts.length === 0) return null;
  const now = Date.now(); // dates may be compared as numbers; money may not
  const running = drafts.find(
    (draft) => Date.parse(draft.startingAt) <= now && now < Date.parse(draft.endingBefore)
  );
  return running || drafts[drafts.length - 1];
}

// ---------------------------------------------------------------------------------------
// Usage

const WINDOWS = { DAY: 'DAY', HOUR: 'HOUR' };
const MAX_DAYS = { DAY: 366, HOUR: 31 };

/** The start of the window after the one running now (UTC), as an ISO string. */
function nextBoundary(windowSize, now = new Date()) {
  const next = new Date(now.getTime());
  if (windowSize === 'HOUR') {
    next.setUTCMinutes(0, 0, 0);
    next.setUTCHours(next.getUTCHours() + 1);
  } else {
    next.setUTCHours(0, 0, 0, 0);
    next.setUTCDate(next.getUTCDate() + 1);
  }
  return next;
}

const iso = (date) => date.toISOString().replace('.000Z', 'Z');

/** `{ startingAt, endingBefore }` of the last `days` days, up to and with the current window. */
export function usageRange(windowSize = 'DAY', days = 30, now = new Date()) {
  const end = nextBoundary(windowSize, now);
  const start = new Date(end.getTime() - days * 24 * 3600 * 1000);
  return { startingAt: iso(start), endingBefore: iso(end) };
}

function groupKeyOf(group) {
  return JSON.stringify(
    Object.keys(group || {})
      .sort()
      .map((name) => [name, group[name]])
  );
}

/**
 * A metric's usage by hour or day over the last `days` days, per value of `groupKey`, live.
 *
 * - `metricId`: the billable metric's id.
 * - `groupKey`: a group key of the metric (`'model'`, or `['region', 'model']`); omit it for
 *   one total series.
 * - `window`: `'DAY'` (default; at most 366 days) or `'HOUR'` (at most 31 days).
 * - `days`: how far back (default 30).
 *
 * Returns `{ points, series, range, fetching, error, refetch }`: `points` as Meterline
 * returns them (`{ startingAt, endingBefore, group, quantity }`, empty buckets left out,
 * `quantity` a decimal string), `series` the same points per group value
 * (`[{ key, group, points }]`).
 */
export function useUsage(customerId, { metricId, groupKey, window = 'DAY', days = 30 } = {}) {
  const windowSize = WINDOWS[String(window).toUpperCase()];
  if (!windowSize) throw new Error(`window is 'DAY' or 'HOUR', not ${JSON.stringify(window)}`);
  if (!(days > 0 && days <= MAX_DAYS[windowSize])) {
    throw new Error(`${windowSize} windows span 1 to ${MAX_DAYS[windowSize]} days`);
  }
  const range = usageRange(windowSize, days);

  // Move the range along when the current window ends (the variables change: the query and
  // the subscription run again for the new range).
  const [, setTick] = useState(0);
  useEffect(() => {
    const wait = Date.parse(range.endingBefore) - Date.now() + 1000;
    const timer = setTimeout(() => setTick((tick) => tick + 1), Math.max(wait, 1000));
    return () => clearTimeout(timer);
  }, [range.endingBefore]);

  const { data: points, ...live } = useLive({
    query: USAGE,
    subscription: USAGE_UPDATED,
    variables: {
      customerId,
      billableMetricId: metricId,
      startingAt: range.startingAt,
      endingBefore: range.endingBefore,
      windowSize,
      groupKey: groupKey == null ? null : [].concat(groupKey),
    },
    pause: !customerId || !metricId,
    fromQuery: (data) => (data.customer ? data.customer.usage : undefined),
    fromSubscription: (data) => data.usageUpdated.usage,
  });

  let series;
  if (points) {
    const byGroup = new Map();
    for (const point of points) {
      const key = groupKeyOf(point.group);
      if (!byGroup.has(key)) byGroup.set(key, { key, group: point.group, points: [] });
      byGroup.get(key).points.push(point);
    }
    series = [...byGroup.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
  return { ...live, points, series, range };
}

// ---------------------------------------------------------------------------------------
// Budget alerts

/** A decimal string for the API, refusing JavaScript numbers that are not integers. */
function decimalString(value) {
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isSafeInteger(value))) {
    return String(value);
  }
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) return value.trim();
  throw new TypeError(
    `a threshold is a decimal string such as "250.00", not ${JSON.stringify(value)}`
  );
}

const STATE_RANK = ['IN_ALARM', 'EVALUATING', 'OK']; // the worst state first

/** The customer's state in an alert: the worst of its statuses (one per group value for a
 * grouped alert); none yet is EVALUATING. */
function customerState(alert, customerId) {
  const statuses = (alert.statuses || []).filter((s) => s.customerId === customerId);
  if (statuses.length === 0) return 'EVALUATING';
  return (
    STATE_RANK.find((state) => statuses.some((s) => s.state === state)) || statuses[0].state
  );
}

/**
 * The alerts watching the customer (its own and organization-wide ones), live, each with
 * `state` (`EVALUATING`, `OK` or `IN_ALARM`: the customer's worst state in it, over the
 * group values of a grouped alert) and `own` (created for this customer: only those can be
 * archived with a customer token).
 *
 * `createAlert({ name, threshold, alertType, billableMetricId, groupKey, groupValues })`
 * creates a spend (default), usage or invoice-total alert for the customer; `threshold` is a
 * decimal string. `archiveAlert(id)` archives one. Both resolve to the alert, or reject with
 * an Error whose `code` is Meterline's (`VALIDATION` with `field`, `FORBIDDEN`, …).
 */
export function useBudgetAlerts(customerId) {
  const { data, ...live } = useLive({
    query: BUDGET_ALERTS,
    subscription: ALERT_STATE_CHANGED,
    variables: { customerId },
    pause: !customerId,
    fromQuery: (data) => (data.customer ? data.customer.alerts : undefined),
    fromSubscription: (data) => data.alertStateChanged,
  });
  const [, runCreate] = useMutation(CREATE_BUDGET_ALERT);
  const [, runArchive] = useMutation(ARCHIVE_ALERT);
  const { refetch } = live;

  const createAlert = useCallback(
    async ({
      name,
      threshold,
      alertType = 'SPEND_THRESHOLD_REACHED',
      billableMetricId = null,
      groupKey = null,
      groupValues = null,
      uniquenessKey = null,
    }) => {
      if (!BUDGET_ALERT_TYPES.includes(alertType)) {
        throw new Error(`a customer creates ${BUDGET_ALERT_TYPES.join(', ')} alerts`);
      }
      const input = {
        name,
        alertType,
        threshold: decimalString(threshold),
        customerId,
        billableMetricId,
        groupKey,
        groupValues,
        uniquenessKey,
      };
      const result = await runCreate({ input });
      if (result.error) throw meterlineError(result.error);
      refetch();
      return result.data.createAlert;
    },
    [customerId, runCreate, refetch]
  );

  const archiveAlert = useCallback(
    async (id) => {
      const result = await runArchive({ id });
      if (result.error) throw meterlineError(result.error);
      refetch();
      return result.data.archiveAlert;
    },
    [runArchive, refetch]
  );

  const alerts = data
    ? data
        .filter((alert) => !alert.archivedAt)
        .map((alert) => ({
          ...alert,
          state: customerState(alert, customerId),
          own: alert.customerId === customerId,
        }))
    : undefined;
  return { ...live, alerts, createAlert, archiveAlert };
}
