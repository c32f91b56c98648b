// A billing panel for a logged-in customer: this month's draft invoice, 30 days of usage
// per model, and budget alerts, all live.
//
// Your backend exposes `GET /api/meterline-token` to its logged-in user and answers
// `{ token, expiresAt, customerId }` (see ../server/mint_token.py or ../server/mintToken.mjs):
// it mints a customer token with its admin key, which never leaves the server.

import { useMemo, useState } from 'react';
import { Provider } from 'urql';

import { createMeterlineClient, createTokenSource } from './client.js';
import { useBudgetAlerts, useDraftInvoice, useUsage } from './hooks.js';

const METERLINE_URL = 'https://billing.example.com/graphql';

async function fetchToken() {
  const response = await fetch('/api/meterline-token', { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
  return response.json(); // { token, expiresAt, customerId }
}

export default function App({ customerId, metricId }) {
  const { client } = useMemo(
    () => createMeterlineClient({ url: METERLINE_URL, tokens: createTokenSource(fetchToken) }),
    []
  );
  return (
    <Provider value={client}>
      <BillingPanel customerId={customerId} metricId={metricId} />
    </Provider>
  );
}

const cell = { padding: '2px 8px', borderBottom: '1px solid var(--meterline-border, #d1d5db)' };

export function BillingPanel({ customerId, metricId }) {
  return (
    <div
      style={{
        fontFamily: 'var(--meterline-font, system-ui, sans-serif)',
        color: 'var(--meterline-color, #111827)',
      }}
    >
      <DraftInvoice customerId={customerId} />
      <Usage customerId={customerId} metricId={metricId} />
      <BudgetAlerts customerId={customerId} />
    </div>
  );
}

function Failure({ error }) {
  const code = error.graphQLErrors?.[0]?.extensions?.code;
  return (
    <p style={{ color: 'var(--meterline-danger, #b91c1c)' }}>
      {code || 'Error'}: {error.message}
    </p>
  );
}

function DraftInvoice({ customerId }) {
  const { draft, fetching, error } = useDraftInvoice(customerId);
  if (error) return <Failure error={error} />;
  if (fetching) return <p>Loading the invoice…</p>;
  if (!draft) return <p>No open invoice.</p>;
  return (
    <section>
      <h3>
        Invoice so far ({draft.startingAt.slice(0, 10)} – {draft.endingBefore.slice(0, 10)})
      </h3>
      <table>
        <tbody>
          {draft.lines.map((line, index) => (
            <tr key={index}>
              <td style={cell}>
                {line.name}
                {Object.keys(line.group).length > 0 && ` (${Object.values(line.group).join(', ')})`}
              </td>
              <td style={{ ...cell, textAlign: 'right' }}>{line.quantity}</td>
              {/* Decimal strings, shown exactly as Meterline computed them. */}
              <td style={{ ...cell, textAlign: 'right' }}>{line.amount}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        <strong>
          Total: {draft.total} {draft.currency}
        </strong>
      </p>
    </section>
  );
}

function Usage({ customerId, metricId }) {
  const { series, fetching, error } = useUsage(customerId, {
    metricId,
    groupKey: 'model',
    window: 'DAY',
    days: 30,
  });
  if (error) return <Failure error={error} />;
  if (fetching) return <p>Loading usage…</p>;
  // `series` is undefined while the hook is paused (no customerId or metricId yet)
  if (series === undefined) return <p>Choose a metric to see its usage.</p>;
  return (
    <section>
      <h3>Usage, last 30 days</h3>
      {series.length === 0 && <p>No usage yet.</p>}
      {series.map(({ key, group, points }) => (
        <div key={key}>
          <h4>{Object.values(group).join(', ') || 'Total'}</h4>
          <table>
            <tbody>
              {points.map((point) => (
                <tr key={point.startingAt}>
                  <td style={cell}>{point.startingAt.slice(0, 10)}</td>
                  <td style={{ ...cell, textAlign: 'right' }}>{point.quantity}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </section>
  );
}

const STATE_COLOR = {
  IN_ALARM: 'var(--meterline-danger, #b91c1c)',
  OK: 'var(--meterline-ok, #15803d)',
  EVALUATING: 'var(--meterline-muted, #4b5563)',
};

function BudgetAlerts({ customerId }) {
  const { alerts, fetching, error, createAlert, archiveAlert } = useBudgetAlerts(customerId);
  const [threshold, setThreshold] = useState('100.00'); // kept as a string, never a number
  const [problem, setProblem] = useState(null);

  async function onSubmit(event) {
    event.preventDefault();
    setProblem(null);
    try {
      await createAlert({ name: `Spend over ${threshold}`, threshold });
    } catch (failure) {
      setProblem(failure.code ? `${failure.code}: ${failure.message}` : failure.message);
    }
  }

  if (error) return <Failure error={error} />;
  if (fetching) return <p>Loading alerts…</p>;
  if (alerts === undefined) return null; // paused: no customerId yet
  return (
    <section>
      <h3>Budget alerts</h3>
      <ul>
        {alerts.map((alert) => (
          <li key={alert.id}>
            {alert.name}: {alert.threshold}{' '}
            <span style={{ color: STATE_COLOR[alert.state] }}>{alert.state}</span>{' '}
            {alert.own && (
              <button
                type="button"
                onClick={() => archiveAlert(alert.id).catch((f) => setProblem(f.message))}
              >
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      <form onSubmit={onSubmit}>
        <label>
          Alert me when this period's usage spend (before credits) reaches{' '}
          <input
            value={threshold}
            onChange={(event) => setThreshold(event.target.value)}
            inputMode="decimal"
            pattern="\d+(\.\d+)?"
          />
        </label>{' '}
        <button type="submit">Add alert</button>
      </form>
      {problem && <p style={{ color: 'var(--meterline-danger, #b91c1c)' }}>{problem}</p>}
    </section>
  );
}
