import autocannon from 'autocannon';
import pg from 'pg';
import { scratchDatabase, type BenchRow } from '../lib.ts';
import { BENCH_ORG, benchToken, startChild, startService } from '../service.ts';

const CONNECTIONS = 50;
/** Writes per second of the paced runs. */
const PACE = 100;
const ORG = BENCH_ORG;

const createBody = JSON.stringify({
  projectId: 'payments',
  title: 'Checkout latency above SLO',
  serviceName: 'checkout',
  severity: 'SEV2',
  environment: 'production',
  tags: ['latency'],
});

interface Load {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** Every answer that was not 2xx, by `<status> <problem code>`. */
  refused: Map<string, number>;
}

/** Runs one load; with `warmUp`, a first unmeasured run of that many seconds. */
async function load(options: autocannon.Options, warmUp = 2): Promise<Load> {
  if (warmUp > 0) await autocannon({ connections: CONNECTIONS, ...options, duration: warmUp });
  const refused = new Map<string, number>();
  const count: autocannon.Request['onResponse'] = (status, body) => {
    if (status >= 200 && status < 300) return;
    let code = '';
    try {
      code = String((JSON.parse(body) as { code?: unknown }).code ?? '');
    } catch {
      // Not a problem document: counted by status alone.
    }
    const key = `${status} ${code}`.trim();
    refused.set(key, (refused.get(key) ?? 0) + 1);
  };
  const requests: autocannon.Request[] = options.requests
    ? options.requests.map((request) => ({ ...request, onResponse: count }))
    : [{ method: options.method, headers: options.headers, body: options.body, onResponse: count }];
  const result = await autocannon({ connections: CONNECTIONS, ...options, requests });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    refused,
  };
}

function refusals(measured: Load): string {
  const counted = [...measured.refused].map(([key, n]) => `${n}× ${key}`).join(', ');
  return measured.non2xx + measured.errors > 0
    ? ` (${measured.non2xx} non-2xx${counted ? `: ${counted}` : ''}, ${measured.errors} errors)`
    : ' (0 non-2xx)';
}

function rows(
  metric: string,
  measured: Load,
  baseline: Load,
  targets: { rps: string; p99: string },
): BenchRow[] {
  const label = 'bare Fastify + 1 INSERT';
  return [
    {
      scenario: 'HTTP, 50 connections',
      metric: `${metric}: throughput${refusals(measured)}`,
      value: measured.rps,
      unit: 'req/s',
      baseline: { label, value: baseline.rps },
      target: targets.rps,
    },
    {
      scenario: 'HTTP, 50 connections',
      metric: `${metric}: p50 latency`,
      value: measured.p50,
      unit: 'ms',
      baseline: { label, value: baseline.p50 },
    },
    {
      scenario: 'HTTP, 50 connections',
      metric: `${metric}: p99 latency`,
      value: measured.p99,
      unit: 'ms',
      baseline: { label, value: baseline.p99 },
      target: targets.p99,
    },
  ];
}

/** Latency rows of a paced run, beside the bare route paced the same way (the targets are absolute). */
function pacedRows(metric: string, measured: Load, baseline: Load): BenchRow[] {
  const label = 'bare Fastify + 1 INSERT, same pace';
  return [
    {
      scenario: 'HTTP, paced 100 writes/s',
      metric: `${metric}: p50 latency${refusals(measured)}`,
      value: measured.p50,
      unit: 'ms',
      baseline: { label, value: baseline.p50 },
      target: '< 15 ms',
    },
    {
      scenario: 'HTTP, paced 100 writes/s',
      metric: `${metric}: p99 latency`,
      value: measured.p99,
      unit: 'ms',
      baseline: { label, value: baseline.p99 },
      target: '< 50 ms',
    },
  ];
}

/** A transaction with an id left open in another database of the same server, until `release`. */
async function holdTransactionElsewhere(url: string): Promise<{ release(): Promise<void> }> {
  const other = await scratchDatabase(url);
  const client = new pg.Client({ connectionString: other.url });
  await client.connect();
  await client.query('begin');
  await client.query('create table squatter (id int)');
  return {
    async release() {
      await client.query('rollback').catch(() => {});
      await client.end().catch(() => {});
      await other.drop();
    },
  };
}

/** Command throughput and latency over real HTTP, beside a bare Fastify route doing one INSERT; then RSS over a soak. */
export async function httpCommands(url: string, seconds: number, soakSeconds: number): Promise<BenchRow[]> {
  const bare = await startChild(
    ['--import', 'tsx', 'bench/bare-server.ts'],
    { DATABASE_URL: url },
    '/health',
  );
  let baseline: Load;
  let pacedBaseline: Load;
  const bareInsert = {
    url: `${bare.url}/insert`,
    method: 'POST' as const,
    headers: { 'content-type': 'application/json' },
    body: createBody,
  };
  try {
    baseline = await load({ ...bareInsert, duration: seconds });
    pacedBaseline = await load({ ...bareInsert, duration: seconds, connections: 10, overallRate: PACE });
  } finally {
    await bare.stop();
  }

  const its = await startService(url);
  try {
    const token = benchToken('bench');
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const base = `${its.url}/api/orgs/${ORG}/incidents`;
    const creates = await load({ url: base, method: 'POST', headers, body: createBody, duration: seconds });
    const paced = { url: base, method: 'POST' as const, headers, body: createBody, duration: seconds };
    const pacedCreates = await load({ ...paced, connections: 10, overallRate: PACE });
    const held = await holdTransactionElsewhere(url);
    let pacedHeld: Load;
    try {
      pacedHeld = await load({ ...paced, connections: 10, overallRate: PACE });
    } finally {
      await held.release();
    }

    const incidents: string[] = [];
    for (let i = 0; i < 200; i++) {
      const response = await fetch(base, { method: 'POST', headers, body: createBody });
      incidents.push(((await response.json()) as { incidentId: string }).incidentId);
    }
    let n = 0;
    // Status flips between two states that allow each other, so no request is refused.
    const mixed: autocannon.Request[] = [
      {
        method: 'POST',
        setupRequest: (request) => {
          const incident = incidents[n++ % incidents.length]!;
          const kind = n % 3;
          const [path, body] =
            kind === 0
              ? [`/status`, { newStatus: n % 2 ? 'INVESTIGATING' : 'MITIGATED' }]
              : kind === 1
                ? [`/actions`, { actionKind: 'NOTE', label: `checked dashboards ${n}` }]
                : [
                    `/signals`,
                    {
                      signalType: 'ALERT',
                      source: 'prometheus',
                      summary: `p99 above 2s (${n})`,
                      correlationKey: `alert-${n % 50}`,
                    },
                  ];
          return {
            ...request,
            path: `/api/orgs/${ORG}/incidents/${incident}${path}`,
            headers,
            body: JSON.stringify(body),
          };
        },
      },
    ];
    const mix = await load({ url: its.url, requests: mixed, duration: seconds });

    const rssWarm = await its.rssBytes();
    await load({ url: its.url, requests: mixed, duration: soakSeconds, connections: 20 }, 0);
    const rssAfter = await its.rssBytes();
    return [
      ...rows('POST …/incidents (read-your-writes)', creates, baseline, { rps: '>= 0.4', p99: '<= 3' }),
      ...rows('mixed status/note/signal (read-your-writes)', mix, baseline, { rps: '>= 0.35', p99: '<= 3' }),
      ...pacedRows('POST …/incidents (read-your-writes)', pacedCreates, pacedBaseline),
      ...pacedRows('the same, a transaction held open in another database', pacedHeld, pacedBaseline),
      {
        scenario: 'memory',
        metric: `service RSS after a ${soakSeconds} s load`,
        value: rssAfter / 2 ** 20,
        unit: 'MiB',
        baseline: { label: 'RSS before it (warmed up)', value: rssWarm / 2 ** 20 },
        target: '<= 1.25',
      },
    ];
  } finally {
    await its.stop();
  }
}
