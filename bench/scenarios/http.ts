import autocannon from 'autocannon';
import { signToken } from '../../src/http/tokens.ts';
import type { BenchRow } from '../lib.ts';
import { startChild } from '../service.ts';

const CONNECTIONS = 50;
const SECRET = 'bench-secret-bench-secret-bench-secret';
const ORG = 'bench';

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

function rows(metric: string, measured: Load, baseline: Load): BenchRow[] {
  const label = 'bare Fastify + 1 INSERT';
  const note =
    measured.non2xx + measured.errors > 0 ? ` (${measured.non2xx} non-2xx, ${measured.errors} errors)` : '';
  return [
    {
      scenario: 'HTTP, 50 connections',
      metric: `${metric}: throughput${note}`,
      value: measured.rps,
      unit: 'req/s',
      baseline: { label, value: baseline.rps },
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
    },
  ];
}

/** Command throughput and latency over real HTTP, beside a bare Fastify route doing one INSERT; then RSS over a soak. */
export async function httpCommands(url: string, seconds: number, soakSeconds: number): Promise<BenchRow[]> {
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
      body: createBody,
      duration: seconds,
    });
  } finally {
    await bare.stop();
  }

  const its = await startChild(
    ['bin/its.js', 'serve'],
    {
      DATABASE_URL: url,
      JWT_SECRET: SECRET,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '100000000',
      NODE_ENV: 'production',
    },
    '/health/ready',
  );
  try {
    const token = signToken(
      { sub: 'bench', orgs: { [ORG]: ['ORG_ADMIN'] }, exp: Math.floor(Date.now() / 1000) + 3600 },
      'HS256',
      SECRET,
    );
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const base = `${its.url}/api/orgs/${ORG}/incidents`;
    const creates = await load({ url: base, method: 'POST', headers, body: createBody, duration: seconds });

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
    await load({ url: its.url, requests: mixed, duration: soakSeconds, connections: 20 });
    const rssAfter = await its.rssBytes();
    return [
      ...rows('POST …/incidents (read-your-writes)', creates, baseline),
      ...rows('mixed status/note/signal (read-your-writes)', mix, baseline),
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
