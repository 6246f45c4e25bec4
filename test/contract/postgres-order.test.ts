import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { comparePositions, parsePosition } from '../../src/eventstore/port.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';

// A fresh embedded database starts with transaction ids in the hundreds, so a few hundred appends
// cross 1,000: the global order must compare them as numbers, never as text ('1000' < '902').
describe('PostgreSQL event store: global order across a power of ten of transaction ids', () => {
  let test: TestDatabase;
  let store: PostgresEventStore;
  beforeAll(async () => {
    test = await openTestDatabase({ kind: 'pglite' });
    store = new PostgresEventStore(test.database);
  });
  afterAll(async () => {
    await test?.cleanup();
  });

  it('reads every event once, in position order, when transaction ids gain a digit', async () => {
    const { rows } = await sql<{ xid: string }>`select pg_current_xact_id()::text as xid`.execute(
      test.database.db,
    );
    const start = Number(rows[0]!.xid);
    const next = 10 ** String(start).length;
    const appends = next - start + 20;
    expect(appends, 'the database must start close enough below a power of ten').toBeLessThan(2000);
    for (let i = 0; i < appends; i++) {
      await store.append(
        `incident-order.inc_${i}`,
        [{ eventId: randomUUID(), type: 'N', data: { i }, metadata: {} }],
        'no_stream',
      );
    }
    const log = [];
    let from: string | null = null;
    for (;;) {
      const page = await store.readAll({ fromPosition: from, streamPrefix: 'incident-order.', limit: 97 });
      if (page.length === 0) break;
      log.push(...page);
      from = page.at(-1)!.position;
    }
    expect(log.map((e) => e.data.i)).toEqual(Array.from({ length: appends }, (_, i) => i));
    expect(parsePosition(log.at(-1)!.position)[0]).toBeGreaterThanOrEqual(BigInt(next));
    for (let i = 1; i < log.length; i++)
      expect(comparePositions(log[i - 1]!.position, log[i]!.position)).toBe(-1);
    expect(await store.headPosition('incident-order.')).toBe(log.at(-1)!.position);
  });
});
