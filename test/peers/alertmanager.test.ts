import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type Runtime } from '../../src/app/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { signToken } from '../../src/http/tokens.ts';
import {
  postgresBinDir,
  startDedicatedPostgres,
  type DedicatedPostgres,
} from '../support/postgres-instance.ts';

/**
 * A real Alertmanager HA pair (Debian's prometheus-alertmanager) posting to ITS on a real socket,
 * ITS on a PostgreSQL server of this test's own. Alerts go to both peers' /api/v2/alerts, as
 * Prometheus sends them; the peers gossip and both may deliver. Then that PostgreSQL is stopped
 * while a notification is due and started again: Alertmanager's retries land once.
 */

const ALERTMANAGER = '/usr/bin/prometheus-alertmanager';
const skipReason = !existsSync(ALERTMANAGER)
  ? `${ALERTMANAGER} is not installed`
  : postgresBinDir() === null
    ? 'no PostgreSQL server binaries to run a dedicated instance'
    : null;
if (skipReason) console.warn(`Alertmanager peer test: SKIPPED (${skipReason})`);

const ORG = 'acme';

/** The receiver configuration the README shows, with this test's address and token file. */
export function alertmanagerConfig(itsBaseUrl: string, tokenFile: string): string {
  return `route:
  receiver: its
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: its
    webhook_configs:
      - url: ${itsBaseUrl}/api/orgs/${ORG}/alerts/alertmanager?projectId=payments&environment=production
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials_file: ${tokenFile}
`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns a value (errors count as not yet: the database may be restarting). */
async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 40_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

interface Peer {
  web: string;
  process: ChildProcess;
}

describe.skipIf(skipReason !== null)('a real Alertmanager HA pair posting to ITS', () => {
  let server: DedicatedPostgres;
  let runtime: Runtime;
  let app: FastifyInstance;
  let dir: string;
  let databaseUrl: string;
  const peers: Peer[] = [];
  const startsAt = new Date(Date.now() - 60_000).toISOString();

  beforeAll(async () => {
    server = await startDedicatedPostgres();
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query('create database its_alerts');
    await admin.end();
    const url = new URL(server.url);
    url.pathname = '/its_alerts';
    databaseUrl = url.toString();
    const secret = randomBytes(32).toString('base64url');
    runtime = await openRuntime(
      loadConfig({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        JWT_SECRET: secret,
        DATABASE_URL: url.toString(),
        DATA_DIR: '/nonexistent-its-test-data',
        CONSISTENCY_TIMEOUT_MS: '2000',
      }),
      { migrate: true, workers: true },
    );
    app = buildApp(runtime, { logger: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

    dir = await mkdtemp(join(tmpdir(), 'its-alertmanager-'));
    const now = Math.floor(Date.now() / 1000);
    const token = signToken(
      {
        sub: 'alertmanager-prod',
        orgs: { [ORG]: ['MEMBER'] },
        actor_type: 'INTEGRATION',
        iat: now,
        exp: now + 3600,
      },
      'HS256',
      secret,
    );
    await writeFile(join(dir, 'its-token'), token);
    await writeFile(join(dir, 'alertmanager.yml'), alertmanagerConfig(base, join(dir, 'its-token')));

    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const cluster = [`127.0.0.1:${ports[2]}`, `127.0.0.1:${ports[3]}`];
    for (const index of [0, 1]) {
      const web = `127.0.0.1:${ports[index]}`;
      const child = spawn(
        ALERTMANAGER,
        [
          `--config.file=${join(dir, 'alertmanager.yml')}`,
          `--storage.path=${join(dir, `peer${index}`)}`,
          `--web.listen-address=${web}`,
          `--cluster.listen-address=${cluster[index]}`,
          `--cluster.advertise-address=${cluster[index]}`,
          `--cluster.peer=${cluster[1 - index]}`,
          '--cluster.peer-timeout=2s',
          '--cluster.gossip-interval=100ms',
          '--cluster.pushpull-interval=1s',
          '--cluster.settle-timeout=1s',
          '--log.level=warn',
        ],
        { stdio: 'ignore' },
      );
      peers.push({ web: `http://${web}`, process: child });
    }
    // Both peers up and seeing each other.
    for (const peer of peers)
      await eventually('the Alertmanager cluster', async () => {
        const status = (await (await fetch(`${peer.web}/api/v2/status`)).json()) as {
          cluster: { peers: unknown[] };
        };
        return status.cluster.peers.length === 2 ? true : undefined;
      });
  });

  afterAll(async () => {
    for (const peer of peers) peer.process.kill('SIGTERM');
    await app?.close();
    await runtime?.close();
    await server?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A fresh session per read: the test's own database is stopped and started in between. */
  async function query<T extends pg.QueryResultRow>(text: string): Promise<T[]> {
    const reader = new pg.Client({ connectionString: databaseUrl });
    await reader.connect();
    try {
      return (await reader.query<T>(text)).rows;
    } finally {
      await reader.end();
    }
  }

  /** Prometheus sends every active alert to every Alertmanager; `endsAt` in the past resolves one. */
  async function send(alerts: { instance: string; severity: string; resolved?: boolean }[]): Promise<void> {
    const body = alerts.map((alert) => ({
      labels: {
        alertname: 'CheckoutLatency',
        service: 'checkout',
        instance: alert.instance,
        severity: alert.severity,
      },
      annotations: { summary: `p99 above 2s on ${alert.instance}` },
      startsAt,
      ...(alert.resolved ? { endsAt: new Date(Date.now() - 1000).toISOString() } : {}),
      generatorURL: 'http://prometheus.example:9090/graph',
    }));
    for (const peer of peers) {
      const response = await fetch(`${peer.web}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(200);
    }
  }

  const incidents = () =>
    query<{ id: string; status: string; severity: string }>(
      `select id, status, severity from incidents where org_id = '${ORG}' order by created_at`,
    );
  /** `instance:status` of every signal, in order. */
  const signals = async () =>
    (
      await query<{ instance: string; status: string }>(
        `select data->'labels'->>'instance' as instance, status from incident_signals where org_id = '${ORG}' order by version`,
      )
    ).map((row) => `${row.instance}:${row.status}`);

  it('opens one incident with every alert, escalates, resolves with the last alert, and loses nothing to an outage', async () => {
    await send([
      { instance: 'web-1', severity: 'warning' },
      { instance: 'web-2', severity: 'warning' },
    ]);
    const opened = await eventually('the incident with both alerts', async () => {
      const found = await incidents();
      return found.length === 1 && (await signals()).length === 2 ? found[0] : undefined;
    });
    expect(opened).toMatchObject({ status: 'OPEN', severity: 'SEV3' });
    expect((await signals()).sort()).toEqual(['web-1:firing', 'web-2:firing']);

    // A more severe alert joins the group.
    await send([
      { instance: 'web-1', severity: 'warning' },
      { instance: 'web-2', severity: 'warning' },
      { instance: 'db-1', severity: 'critical' },
    ]);
    await eventually('the escalation', async () =>
      (await incidents())[0]?.severity === 'SEV1' ? true : undefined,
    );
    expect((await signals()).slice(2)).toEqual(['db-1:firing']);

    // Two of three resolve: the incident stays open.
    await send([
      { instance: 'web-1', severity: 'warning', resolved: true },
      { instance: 'web-2', severity: 'warning', resolved: true },
      { instance: 'db-1', severity: 'critical' },
    ]);
    await eventually('two resolutions', async () => ((await signals()).length === 5 ? true : undefined));
    expect((await incidents())[0]).toMatchObject({ id: opened.id, status: 'OPEN' });

    // The last one resolves while PostgreSQL is down: Alertmanager's deliveries fail, then land.
    await server.stop('fast');
    await send([{ instance: 'db-1', severity: 'critical', resolved: true }]);
    const failed = await eventually('a failed delivery during the outage', async () => {
      let total = 0;
      for (const peer of peers) {
        const metrics = await (await fetch(`${peer.web}/metrics`)).text();
        const match = /^alertmanager_notifications_failed_total\{integration="webhook"\} (\d+)/m.exec(
          metrics,
        );
        total += Number(match?.[1] ?? 0);
      }
      return total > 0 ? total : undefined;
    });
    expect(failed).toBeGreaterThan(0);
    await server.start();

    const resolved = await eventually('the resolution after the outage', async () => {
      const [incident] = await incidents();
      return incident?.status === 'RESOLVED' ? incident : undefined;
    });
    expect(resolved.id).toBe(opened.id);
    expect(await incidents()).toHaveLength(1);
    const all = await signals();
    expect([...all].sort()).toEqual([
      'db-1:firing',
      'db-1:resolved',
      'web-1:firing',
      'web-1:resolved',
      'web-2:firing',
      'web-2:resolved',
    ]);
    expect(all.at(-1)).toBe('db-1:resolved');
    const [severityChanges] = await query<{ changes: string }>(
      `select count(*) as changes from its_events where stream_name like 'incident-${ORG}.%' and type = 'INCIDENT_SEVERITY_CHANGED'`,
    );
    expect(Number(severityChanges!.changes)).toBe(1);
  }, 120_000);
});
