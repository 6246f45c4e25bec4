import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { collect } from '../support/subscriber.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';

const event = (type: string) => ({ eventId: randomUUID(), type, data: {}, metadata: { schemaVersion: 1 } });

/** A session with a transaction that has taken a transaction id and stays open. */
async function holdTransaction(url: string, write: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('begin');
  await client.query(write);
  const { rows } = await client.query<{ xid: string | null }>(
    'select pg_current_xact_id_if_assigned()::text as xid',
  );
  expect(rows[0]!.xid).not.toBeNull();
  return client;
}

// Two sessions must run at once, which one embedded PGlite session cannot do.
if (!serverUrl) console.warn('PostgreSQL horizon test: SKIPPED (DATABASE_URL is not set)');

describe.skipIf(!serverUrl)('PostgreSQL event store: what holds the horizon back', () => {
  let test: TestDatabase;
  let other: TestDatabase;
  let store: PostgresEventStore;
  beforeAll(async () => {
    test = await openTestDatabase({ kind: 'server' });
    other = await openTestDatabase({ kind: 'server', migrate: false });
    store = new PostgresEventStore(test.database);
  });
  afterAll(async () => {
    await test?.cleanup();
    await other?.cleanup();
  });

  /** The median of some lags: the machine is shared, so one slow turn says nothing (the bench measures p99). */
  function median(values: readonly number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  /**
   * Appends one event at a time and returns how long each took to reach a subscriber (ms). Each one
   * arrives while the held transactions stay open: with a horizon they held back, none would.
   */
  async function lags(prefix: string, count: number): Promise<number[]> {
    const subscriber = collect(store, prefix);
    try {
      const taken: number[] = [];
      for (let i = 0; i < count; i++) {
        const started = performance.now();
        await store.append(`${prefix}inc_${i}`, [event(`E${i}`)], 'no_stream');
        await subscriber.until(i + 1);
        taken.push(performance.now() - started);
      }
      expect(subscriber.received.map((e) => e.type)).toEqual(
        Array.from({ length: count }, (_, i) => `E${i}`),
      );
      return taken;
    } finally {
      await subscriber.stop();
    }
  }

  it('is not a transaction left open in another database of the server: lag stays under 50 ms (median)', async () => {
    const held = await holdTransaction(other.url!, 'create table squatter (id int)');
    try {
      const taken = await lags(`incident-elsewhere${randomUUID().slice(0, 8)}.`, 20);
      expect(median(taken), `lags ${taken.map(Math.round).join(', ')} ms`).toBeLessThan(50);
    } finally {
      await held.query('rollback');
      await held.end();
    }
  });

  it('is not a read-model transaction or a report query in this database', async () => {
    const writer = await holdTransaction(
      test.url!,
      `update projection_checkpoints set updated_at = now() where name = 'none'; select pg_current_xact_id()`,
    );
    const report = new pg.Client({ connectionString: test.url });
    await report.connect();
    await report.query('begin isolation level repeatable read');
    await report.query('select count(*) from its_events');
    try {
      const taken = await lags(`incident-readmodel${randomUUID().slice(0, 8)}.`, 20);
      expect(median(taken), `lags ${taken.map(Math.round).join(', ')} ms`).toBeLessThan(50);
    } finally {
      await report.query('rollback');
      await report.end();
      await writer.query('rollback');
      await writer.end();
    }
  });

  it('refuses an append in a transaction that already has an id, which could land below the horizon', async () => {
    const client = await holdTransaction(test.url!, 'select pg_current_xact_id()');
    try {
      await expect(
        client.query('select * from its_append($1, $2, -1, $3::jsonb)', [
          'incident-late.inc_a',
          'incident-late.',
          JSON.stringify([event('LATE')]),
        ]),
      ).rejects.toThrow(/first write of its transaction/);
    } finally {
      await client.query('rollback');
      await client.end();
    }
  });
});
