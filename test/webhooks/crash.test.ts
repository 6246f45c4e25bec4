import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { incidentStreamName, orgStreamPrefix } from '../../src/domain/streams.ts';
import type { EventStore } from '../../src/eventstore/port.ts';
import { WebhookEndpoints } from '../../src/webhooks/endpoints.ts';
import { SecretBox } from '../../src/webhooks/secrets.ts';
import { freshOrg } from '../support/app.ts';
import { serverUrl, useTestStore } from '../support/database.ts';
import { Receiver } from './receiver.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const script = fileURLToPath(new URL('./worker-process.ts', import.meta.url));
const running = new Set<ChildProcess>();

/** Starts the worker process; resolves once it says it runs. */
function startWorker(url: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, url], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('webhook worker started')) resolve(child);
    });
    child.once('exit', (code) =>
      reject(new Error(`worker exited (${code}) before starting: ${stderr.slice(-2000)}`)),
    );
  });
}

const kill = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

/** Appends `count` note events spread over a few incidents of the org, one append at a time. */
async function appendNotes(store: EventStore, org: string, count: number, pauseMs: number): Promise<void> {
  const incidents = Array.from({ length: 5 }, () => `inc_${randomUUID().replaceAll('-', '')}`);
  for (let i = 0; i < count; i++) {
    const stream = incidentStreamName(org, incidents[i % incidents.length]!);
    await store.append(
      stream,
      [{ eventId: randomUUID(), type: 'INCIDENT_NOTE_ADDED', data: { n: i }, metadata: {} }],
      'any',
    );
    if (pauseMs) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}

// A second process and SIGKILL need a PostgreSQL server; PGlite belongs to one process.
describe.skipIf(!serverUrl)('the delivery worker in processes of its own', () => {
  const scope = useTestStore();
  const receivers: Receiver[] = [];
  let endpoints: WebhookEndpoints;
  beforeAll(() => {
    endpoints = new WebhookEndpoints(scope.test.database.db, scope.store, new SecretBox(undefined));
  });
  afterAll(async () => {
    await Promise.all([...running].map(kill));
    await Promise.all(receivers.map((r) => r.stop()));
  });

  const endpointFor = async (org: string) => {
    const receiver = await new Receiver().start();
    receivers.push(receiver);
    const { secret } = await endpoints.create(org, { url: receiver.url });
    receiver.secrets = [secret];
    return receiver;
  };

  it('loses no delivery and keeps log order when killed with SIGKILL at random points and restarted', async () => {
    const org = freshOrg();
    const receiver = await endpointFor(org);
    const total = 400;
    const appending = appendNotes(scope.store, org, total, 2);
    let worker = await startWorker(scope.test.url!);
    for (let kills = 0; kills < 5; kills++) {
      await new Promise((resolve) => setTimeout(resolve, 150 + Math.random() * 600));
      await kill(worker);
      worker = await startWorker(scope.test.url!);
    }
    await appending;
    await receiver.until(() => receiver.succeeded().length >= total, 60_000);
    const events = await scope.store.readAll({ streamPrefix: orgStreamPrefix(org), limit: 10_000 });
    expect(events).toHaveLength(total);
    // Each event at least once (repeats after a kill carry the same webhook-id), first arrivals in log order.
    expect(receiver.succeeded().map((r) => r.payload.data.eventId)).toEqual(events.map((e) => e.eventId));
    expect(new Set(receiver.received.map((r) => r.id)).size).toBe(total);
    expect(receiver.rejected).toEqual([]);
    await kill(worker);
  }, 120_000);

  it('with two processes, attempts each endpoint’s deliveries one at a time, each once', async () => {
    const org = freshOrg();
    const hooks = [await endpointFor(org), await endpointFor(org), await endpointFor(org)];
    const workers = [await startWorker(scope.test.url!), await startWorker(scope.test.url!)];
    await appendNotes(scope.store, org, 150, 1);
    for (const hook of hooks) await hook.until(() => hook.succeeded().length >= 150, 60_000);
    const events = await scope.store.readAll({ streamPrefix: orgStreamPrefix(org), limit: 10_000 });
    for (const hook of hooks) {
      expect(hook.maxInFlight).toBe(1);
      expect(hook.received).toHaveLength(150);
      expect(hook.received.map((r) => r.payload.data.eventId)).toEqual(events.map((e) => e.eventId));
    }
    await Promise.all(workers.map(kill));
  }, 120_000);
});
