import autocannon from 'autocannon';
import pg from 'pg';
import { summarize, type BenchRow } from '../lib.ts';
import { BENCH_ORG, benchToken, startChild, startService } from '../service.ts';

const CONNECTIONS = 50;
const GROUPS = 200;
const ALERTS_PER_NOTIFICATION = 10;
const ORG = BENCH_ORG;
const T0 = Date.UTC(2026, 10, 26, 10, 0, 0);

/** An Alertmanager webhook body: `count` firing alerts of `group`, all started at `startsAt`. */
function notification(group: string, count: number, startsAt: string): string {
  const alerts = Array.from({ length: count }, (_, i) => ({
    status: 'firing',
    labels: { alertname: 'CheckoutLatency', service: 'checkout', instance: `web-${i}`, severity: 'warning' },
    annotations: { summary: `p99 above 2s on web-${i}` },
    startsAt,
    endsAt: '0001-01-01T00:00:00Z',
    generatorURL: 'http://prometheus:9090/graph',
    fingerprint: `${group}-${i}`,
  }));
  return JSON.stringify({
    version: '4',
    groupKey: `{}:{alertname="CheckoutLatency",group="${group}"}`,
    status: 'firing',
    receiver: 'its',
    groupLabels: { alertname: 'CheckoutLatency' },
    commonLabels: { alertname: 'CheckoutLatency', service: 'checkout' },
    commonAnnotations: {},
    externalURL: 'http://alertmanager:9093',
    truncatedAlerts: 0,
    alerts,
  });
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(options: autocannon.Options): Promise<Load> {
  const result = await autocannon({ connections: CONNECTIONS, ...options });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/**
 * Alert ingestion over real HTTP: a 1,000-alert storm beside a 1-alert notification (time to
 * answer, events appended), then 50 senders posting 10-alert notifications over 200 groups with
 * read-your-writes on, beside a bare Fastify route doing one INSERT.
 */
export async function ingestAlerts(url: string, seconds: number): Promise<BenchRow[]> {
  const bare = await startChild(
    ['--import', 'tsx', 'bench/bare-server.ts'],
    { DATABASE_URL: url },
    '/health',
  );
  let baseline: Load;
  try {
    baseline = await load({
      url: `${bare.url}/insert`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: notification('bare', ALERTS_PER_NOTIFICATION, new Date(T0).toISOString()),
      duration: seconds,
    });
  } finally {
    await bare.stop();
  }

  const its = await startService(url);
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const token = benchToken('bench-alertmanager', 'MEMBER');
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const endpoint = `${its.url}/api/orgs/${ORG}/alerts/alertmanager`;
    const eventCount = async () => Number((await db.query('select count(*) as n from its_events')).rows[0].n);

    /** Median answer time and the events one notification of `size` new alerts appends, over 5 groups. */
    const single = async (size: number, phase: string) => {
      const times: number[] = [];
      let events = 0;
      for (let round = 0; round < 5; round++) {
        const body = notification(`${phase}-${size}-${round}`, size, new Date(T0).toISOString());
        const before = await eventCount();
        const started = performance.now();
        const response = await fetch(endpoint, { method: 'POST', headers, body });
        times.push(performance.now() - started);
        if (response.status !== 200)
          throw new Error(`storm of ${size}: ${response.status} ${await response.text()}`);
        events = (await eventCount()) - before;
      }
      return { ms: summarize(times).p50, events };
    };
    await single(1, 'warm-up'); // JIT, pools
    const one = await single(1, 'one');
    const storm = await single(1000, 'storm');

    let n = 0;
    const loaded = await load({
      url: endpoint,
      method: 'POST',
      headers,
      duration: seconds,
      requests: [
        {
          method: 'POST',
          setupRequest: (request) => {
            const i = n++;
            // Each notification brings its group's alerts with a new start: every one is written.
            const body = notification(
              `g${i % GROUPS}`,
              ALERTS_PER_NOTIFICATION,
              new Date(T0 + i * 1000).toISOString(),
            );
            return { ...request, body };
          },
        },
      ],
    });

    const scenario = 'ingest';
    const label = 'bare Fastify + 1 INSERT';
    const note =
      loaded.non2xx + loaded.errors > 0 ? ` (${loaded.non2xx} non-2xx, ${loaded.errors} errors)` : '';
    return [
      {
        scenario,
        metric: '1,000-alert notification: time to answer (read-your-writes)',
        value: storm.ms,
        unit: 'ms',
        baseline: { label: '1-alert notification', value: one.ms },
      },
      {
        scenario,
        metric: '1,000-alert notification: events appended (2 appends: group, incident)',
        value: storm.events,
        unit: 'events',
        baseline: { label: '1-alert notification', value: one.events },
      },
      {
        scenario,
        metric: `50 senders, 10-alert notifications over 200 groups: throughput${note}`,
        value: loaded.rps,
        unit: 'notifications/s',
        baseline: { label, value: baseline.rps },
        target: '>= 0.3',
      },
      {
        scenario,
        metric: '50 senders, 10-alert notifications: p50 latency',
        value: loaded.p50,
        unit: 'ms',
        baseline: { label, value: baseline.p50 },
      },
      {
        scenario,
        metric: '50 senders, 10-alert notifications: p99 latency',
        value: loaded.p99,
        unit: 'ms',
        baseline: { label, value: baseline.p99 },
        target: '<= 3',
      },
    ];
  } finally {
    await db.end();
    await its.stop();
  }
}
