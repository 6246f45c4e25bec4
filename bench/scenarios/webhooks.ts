import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.ts';
import { openPostgres } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { incidentStreamName } from '../../src/domain/streams.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { AddressGuard } from '../../src/webhooks/address-guard.ts';
import { newAgents, postDelivery } from '../../src/webhooks/attempt.ts';
import { openWebhooks } from '../../src/webhooks/index.ts';
import { newSecret, signedHeaders } from '../../src/webhooks/signing.ts';
import { summarize, type BenchRow } from '../lib.ts';

const ENDPOINTS = 3;

/** A receiver that answers 204 at once and notes when each webhook-id first arrived. */
async function startReceiver(): Promise<{ url: string; arrivals: Map<string, number>; server: Server }> {
  const arrivals = new Map<string, number>();
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const id = String(request.headers['webhook-id']);
      if (!arrivals.has(id)) arrivals.set(id, performance.now());
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, arrivals, server };
}

/** Resolves once every receiver has seen `count` distinct webhook-ids. */
async function allArrived(receivers: { arrivals: Map<string, number> }[], count: number): Promise<void> {
  while (receivers.some((r) => r.arrivals.size < count))
    await new Promise((resolve) => setTimeout(resolve, 5));
}

/**
 * `events` incident events to 3 endpoints on loopback: deliveries/s from a backlog, and the latency
 * from an append to its arrival while events come in at a steady rate; beside a bare loop of signed
 * POSTs (the same HTTP code, no queue) to the same receivers.
 */
export async function webhookDeliveries(url: string, events: number): Promise<BenchRow[]> {
  const database = openPostgres(url, { poolSize: 20 });
  await migrateToLatest(database.db);
  const store = new PostgresEventStore(database);
  const receivers = await Promise.all(Array.from({ length: ENDPOINTS }, startReceiver));
  const config = loadConfig({ JWT_SECRET: 'bench', WEBHOOK_ALLOW_PRIVATE: 'true' });
  const webhooks = openWebhooks({ config, database, store, registry: new Registry() });
  try {
    // Baseline: each receiver gets `events` signed POSTs one after another, all three at once.
    const guard = new AddressGuard(true);
    const agents = newAgents();
    const secret = newSecret();
    const body = JSON.stringify({
      type: 'INCIDENT_NOTE_ADDED',
      timestamp: new Date().toISOString(),
      data: { n: 0 },
    });
    const bareStarted = performance.now();
    await Promise.all(
      receivers.map(async (receiver, r) => {
        for (let i = 0; i < events; i++) {
          const headers = signedHeaders([secret], `bare_${r}_${i}`, Math.floor(Date.now() / 1000), body);
          const outcome = await postDelivery(receiver.url, headers, body, { guard, agents });
          if (!outcome.ok) throw new Error(`bare POST failed: ${outcome.error}`);
        }
      }),
    );
    const bareRate = (ENDPOINTS * events) / ((performance.now() - bareStarted) / 1000);
    agents.http.destroy();
    for (const receiver of receivers) receiver.arrivals.clear();

    // Throughput: a backlog of `events` appended before the endpoints exist, delivered from the start.
    const org = 'bench';
    const streams = Array.from({ length: 100 }, () =>
      incidentStreamName(org, `inc_${randomUUID().replaceAll('-', '')}`),
    );
    const note = (n: number) => ({
      eventId: randomUUID(),
      type: 'INCIDENT_NOTE_ADDED',
      data: { actionId: `act_${n}`, label: 'checked dashboards', details: 'p99 flat since the rollback' },
      metadata: { orgId: org, occurredAt: new Date().toISOString() },
    });
    for (let i = 0; i < events; i += 50) {
      await store.append(
        streams[(i / 50) % streams.length]!,
        Array.from({ length: 50 }, (_, k) => note(i + k)),
        'any',
      );
    }
    for (const receiver of receivers)
      await webhooks.endpoints.create(org, { url: receiver.url, fromPosition: '0-0' });
    const started = performance.now();
    webhooks.startWorker();
    await allArrived(receivers, events);
    const rate = (ENDPOINTS * events) / ((performance.now() - started) / 1000);

    // Latency: events appended one by one at about 80/s (well below capacity, so no queue builds); append time → first arrival at each receiver.
    const paced = Math.min(1000, events);
    const appendedAt = new Map<string, number>();
    for (let i = 0; i < paced; i++) {
      const event = note(i);
      const at = performance.now();
      await store.append(streams[i % streams.length]!, [event], 'any');
      appendedAt.set(event.eventId, at);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await allArrived(receivers, events + paced);
    const ids = await webhooks.endpoints.db
      .selectFrom('webhook_deliveries')
      .select(['id', 'event_id'])
      .where('event_id', 'in', [...appendedAt.keys()])
      .execute();
    const latencies = ids.flatMap(({ id, event_id }) => {
      const arrived = receivers.map((r) => r.arrivals.get(id)).find((value) => value !== undefined);
      return arrived === undefined ? [] : [arrived - appendedAt.get(event_id)!];
    });
    const { p50, p99 } = summarize(latencies);
    return [
      {
        scenario: 'webhooks',
        metric: `deliveries/s, ${events} events × ${ENDPOINTS} endpoints from a backlog`,
        value: rate,
        unit: '/s',
        baseline: { label: 'bare loop of signed POSTs', value: bareRate },
        target: '>= 0.5',
      },
      {
        scenario: 'webhooks',
        metric: `append → arrival p50 (${paced} paced events)`,
        value: p50,
        unit: 'ms',
      },
      {
        scenario: 'webhooks',
        metric: `append → arrival p99 (${paced} paced events)`,
        value: p99,
        unit: 'ms',
      },
    ];
  } finally {
    await webhooks.stop();
    await Promise.all(receivers.map((r) => new Promise((resolve) => r.server.close(resolve))));
    await database.close();
  }
}
