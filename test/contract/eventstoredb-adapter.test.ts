/**
 * The EventStoreDB adapter against the test server's faults: each test pins one defect of issue 16
 * (the numbers below) that the server exposed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openEventStoreDb, type EventStoreDbEventStore } from '../../src/eventstore/eventstoredb/index.ts';
import {
  EventStoreUnavailable,
  InvalidPosition,
  type EventToAppend,
  type RecordedEvent,
} from '../../src/eventstore/port.ts';
import {
  startEventStoreDbTestServer,
  type EventStoreDbTestServer,
} from '../support/eventstoredb-server/index.ts';
import { startEventStoreDbTestServerThread } from '../support/eventstoredb-server/thread.ts';

const event = (n = 0): EventToAppend => ({ eventId: randomUUID(), type: 'N', data: { n }, metadata: {} });
const prefix = () => `incident-t${randomUUID().slice(0, 8)}.`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves within `ms` or rejects, so a hang fails the test instead of the run. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

/** Collects a subscription's events in the background. */
function follow(store: EventStoreDbEventStore, streamPrefix: string, fromPosition: string | null = null) {
  const controller = new AbortController();
  const received: RecordedEvent[] = [];
  const done = (async () => {
    for await (const recorded of store.subscribe({ streamPrefix, fromPosition, signal: controller.signal }))
      received.push(recorded);
  })();
  return {
    received,
    async until(count: number, ms = 5_000) {
      const deadline = Date.now() + ms;
      while (received.length < count && Date.now() < deadline) await sleep(10);
      return received.length;
    },
    async stop() {
      controller.abort();
      await done;
    },
  };
}

describe('the EventStoreDB adapter on the test server', () => {
  let server: EventStoreDbTestServer;
  let store: EventStoreDbEventStore;
  const subscribeCalls = () => server.calls.filter((call) => call.method === 'subscribe-all').length;

  beforeAll(async () => {
    server = await startEventStoreDbTestServer();
    store = openEventStoreDb(server.url, { livenessTimeoutMs: 100 });
  });
  afterEach(() => {
    server.resetFaults();
  });
  afterAll(async () => {
    await store?.close();
    await server?.close();
  });

  it('1: leaves no call open after reads that stop early, so close() returns', async () => {
    // A log small enough that the rest of a read (up to the client stream's buffer of 16 messages)
    // reaches the client together with the call's OK status, from a server on a thread of its own
    // as a real node is: a read that stopped after one event then cancels a call that has already
    // ended, its unread stream never finishes, and dispose() waits on it. (With 30 events, or the
    // server on the client's thread, the cancel always came first and this passed before the fix.)
    const own = await startEventStoreDbTestServerThread();
    const early = openEventStoreDb(own.url);
    try {
      const streams = prefix();
      for (let i = 0; i < 5; i++) await early.append(`${streams}${i}`, [event(i)], 'no_stream');
      for (let i = 0; i < 20; i++) expect(await early.readAll({ limit: 1 })).toHaveLength(1);
      await within(early.headPosition(streams), 5_000, 'headPosition');
      await within(early.close(), 5_000, 'close()');
    } finally {
      await own.close();
    }
  });

  it('2: a (2^64-1, 2^64-1) checkpoint from a fresh log does not make the subscription skip events (KDB-710)', async () => {
    const own = await startEventStoreDbTestServer();
    own.faults.maxCheckpointAtStart = true;
    const fresh = openEventStoreDb(own.url);
    const streams = prefix();
    const subscriber = follow(fresh, streams);
    await sleep(200);
    for (let i = 0; i < 5; i++) await fresh.append(`${streams}${i}`, [event(i)], 'no_stream');
    expect(await subscriber.until(5, 2_000)).toBe(5);
    await subscriber.stop();
    await fresh.close();
    await own.close();
  });

  it('2: a checkpoint beyond the last event on going live skips nothing, live or after a resubscription', async () => {
    server.faults.checkpointBeyondLive = 100_000n;
    const streams = prefix();
    const subscriber = follow(store, streams);
    await sleep(200);
    for (let i = 0; i < 5; i++) await store.append(`${streams}${i}`, [event(i)], 'no_stream');
    expect(await subscriber.until(5, 2_000)).toBe(5);
    server.dropSubscriptions();
    await sleep(300);
    for (let i = 5; i < 10; i++) await store.append(`${streams}${i}`, [event(i)], 'no_stream');
    expect(await subscriber.until(10, 3_000)).toBe(10);
    expect(subscriber.received.map((e) => e.data.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await subscriber.stop();
  });

  it('3: reads one org’s page with a server-side filter: the events of other orgs never reach the client', async () => {
    const mine = prefix();
    await store.append(`${mine}a`, [event(0)], 'no_stream');
    for (let i = 0; i < 200; i++) await store.append(`${prefix()}x`, [event(i)], 'no_stream');
    await store.append(`${mine}b`, [event(1)], 'no_stream');
    // Each call may cost the page's events and one event for the head of the log, not the 200 others.
    const costOf = async <T>(read: () => Promise<T>): Promise<[T, number]> => {
      const before = server.eventsSent;
      const result = await read();
      return [result, server.eventsSent - before];
    };
    const [page, pageCost] = await costOf(() => store.readAll({ streamPrefix: mine, limit: 10 }));
    expect(page.map((e) => e.streamName)).toEqual([`${mine}a`, `${mine}b`]);
    expect(pageCost).toBeLessThanOrEqual(3);
    const [count, countCost] = await costOf(() => store.countEvents({ streamPrefix: mine }));
    expect([count, countCost <= 3]).toEqual([2, true]);
    const [head, headCost] = await costOf(() => store.headPosition(mine));
    expect([head, headCost <= 3]).toEqual([page[1]!.position, true]);
  });

  it('4: "Server Is Not Ready" on an append is EventStoreUnavailable, and the next append succeeds', async () => {
    server.faults.batchAppendNotReady = 1;
    await expect(store.append(`${prefix()}a`, [event()], 'no_stream')).rejects.toBeInstanceOf(
      EventStoreUnavailable,
    );
    await expect(store.append(`${prefix()}a`, [event()], 'no_stream')).resolves.toMatchObject({ version: 0 });
  });

  it('4: a failed server-features request is not kept: the append after it succeeds', async () => {
    const own = await startEventStoreDbTestServer();
    own.faults.featuresFailures = { count: 1, code: grpc.status.INTERNAL };
    const fresh = openEventStoreDb(own.url);
    await expect(fresh.append(`${prefix()}a`, [event()], 'no_stream')).rejects.toBeInstanceOf(
      EventStoreUnavailable,
    );
    await expect(fresh.append(`${prefix()}a`, [event()], 'no_stream')).resolves.toMatchObject({ version: 0 });
    await fresh.close();
    await own.close();
  });

  it('4: a failed discovery is EventStoreUnavailable', async () => {
    const lost = openEventStoreDb(
      'esdb+discover://127.0.0.1:1?tls=false&maxDiscoverAttempts=1&discoveryInterval=10&gossipTimeout=200',
    );
    await expect(lost.append(`${prefix()}a`, [event()], 'no_stream')).rejects.toBeInstanceOf(
      EventStoreUnavailable,
    );
    await lost.close();
  });

  it('4: a position the server never issued is InvalidPosition, on reads and on subscriptions (no resubscribing for ever)', async () => {
    await expect(
      store.readAll({ fromPosition: '1-1', streamPrefix: prefix(), limit: 5 }),
    ).rejects.toBeInstanceOf(InvalidPosition);
    const calls = subscribeCalls();
    const iterate = async () => {
      for await (const _ of store.subscribe({ streamPrefix: prefix(), fromPosition: '1-1' })) break;
    };
    await expect(within(iterate(), 3_000, 'subscribe')).rejects.toBeInstanceOf(InvalidPosition);
    expect(subscribeCalls() - calls).toBe(1);
  });

  it('5: a quiet, healthy subscription stays up, with or without caughtUp', async () => {
    for (const noCaughtUp of [true, false]) {
      server.faults.noCaughtUp = noCaughtUp;
      const calls = subscribeCalls();
      const subscriber = follow(store, prefix());
      await sleep(1_000);
      expect(subscribeCalls() - calls, `noCaughtUp=${noCaughtUp}`).toBe(1);
      await subscriber.stop();
    }
  });

  it('6: the append read-back and stream reads ask for the leader, so a lagging follower cannot answer a false 503', async () => {
    const stream = `${prefix()}a`;
    server.followerLag();
    try {
      const result = await store.append(stream, [event()], 'no_stream');
      expect(result.version).toBe(0);
      expect(await store.readStream(stream)).toHaveLength(1);
    } finally {
      server.followerCatchUp();
    }
  });

  it('8: a malformed connection string fails without its password anywhere in the error', () => {
    let caught: unknown;
    try {
      openEventStoreDb('esdb://admin:s3cr3t-pw@127.0.0.1:2113?tls=maybe');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(Error);
    const everything = JSON.stringify(caught, Object.getOwnPropertyNames(caught)) + String(caught);
    expect(everything).not.toContain('s3cr3t-pw');
    expect((caught as Error).message).toContain('tls');
  });

  it('8: tlsVerifyCert=false connects to a server whose certificate cannot be verified', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'its-tls-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=not-this-host',
          '-keyout',
          path.join(dir, 'key.pem'),
          '-out',
          path.join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      const tls = {
        key: readFileSync(path.join(dir, 'key.pem')),
        cert: readFileSync(path.join(dir, 'cert.pem')),
      };
      const secure = await startEventStoreDbTestServer({ tls });
      const verifying = openEventStoreDb(`esdb://127.0.0.1:${secure.port}?tls=true`, {
        pingTimeoutMs: 2_000,
      });
      await expect(verifying.ping()).rejects.toBeInstanceOf(EventStoreUnavailable);
      await verifying.close();
      const trusting = openEventStoreDb(`esdb://127.0.0.1:${secure.port}?tls=true&tlsVerifyCert=false`);
      await expect(trusting.append(`${prefix()}a`, [event()], 'no_stream')).resolves.toMatchObject({
        version: 0,
      });
      await trusting.close();
      await secure.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
