import { randomInt } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore } from '../../src/eventstore/port.ts';
import { PROJECTORS } from '../../projections/catalog.ts';
import {
  PROJECTION_NAMES,
  rebuildProjection,
  requestRebuild,
  startProjectionWorkers,
  type ProjectionWorkers,
} from '../../projections/index.ts';
import { databaseLabel, openTestDatabase, type TestDatabase } from '../support/database.ts';
import { appendLog, countEvents, dumpReadModels, generateLog, waitForCheckpoints } from './fixtures.ts';

const tables = [...PROJECTORS.values()].map((projector) => projector.table);

describe(`rebuilding projections while they serve, on ${databaseLabel}`, () => {
  let test: TestDatabase;
  let store: EventStore;
  let workers: ProjectionWorkers;
  beforeAll(async () => {
    test = await openTestDatabase();
    store = test.store;
    workers = startProjectionWorkers({ database: test.database, store });
  });
  afterAll(async () => {
    await workers?.stop();
    await test?.cleanup();
  });

  /** Reads every table of these orgs in a loop until stopped; records each answer and each error. */
  function keepReading(orgs: string[]) {
    let reading = true;
    const counts: Record<string, number>[] = [];
    const errors: unknown[] = [];
    const done = (async () => {
      while (reading) {
        const answer: Record<string, number> = {};
        for (const table of tables) {
          try {
            const { rows } = await sql<{
              count: string | number;
            }>`select count(*) as count from ${sql.table(table)} where org_id in (${sql.join(orgs)})`.execute(
              test.database.db,
            );
            answer[table] = Number(rows[0]!.count);
          } catch (error) {
            errors.push(error);
          }
        }
        counts.push(answer);
        // Real readers arrive through I/O; PGlite answers without any, and a loop of its queries
        // alone would keep timers (the rebuild's among them) from ever firing.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    return {
      counts,
      errors,
      async stop() {
        reading = false;
        await done;
      },
    };
  }

  it('keeps answering every read during the rebuild, and swaps in tables identical to the old ones', async () => {
    const seed = randomInt(2 ** 31);
    const orgs = [`rebuild${seed}a`, `rebuild${seed}b`];
    const log = generateLog({ seed, orgs, incidents: 30, events: 800 });
    const head = await appendLog(store, log);
    await waitForCheckpoints(test.database, head);
    const before = await dumpReadModels(test.database);

    const readers = keepReading(orgs);
    const progress: [number, number][] = [];
    try {
      await Promise.all(
        PROJECTION_NAMES.map((name) =>
          rebuildProjection({
            database: test.database,
            store,
            name,
            onProgress: (done, total) => progress.push([done, total]),
          }),
        ),
      );
    } finally {
      await readers.stop();
    }

    expect(readers.errors).toEqual([]);
    const expected = Object.fromEntries(
      tables.map((table) => [
        table,
        before[table]!.split('\n').filter((line) => orgs.some((org) => line.includes(org))).length,
      ]),
    );
    expect(readers.counts.length).toBeGreaterThan(1);
    for (const answer of readers.counts) expect(answer).toEqual(expected);
    expect(await dumpReadModels(test.database)).toEqual(before);
    expect(progress.at(-1)).toEqual([countEvents(log), countEvents(log)]);

    const checkpoints = await test.database.db.selectFrom('projection_checkpoints').selectAll().execute();
    for (const checkpoint of checkpoints) {
      expect(checkpoint).toMatchObject({ position: head, state: 'running', rebuild_requested_at: null });
      expect(Number(checkpoint.events_processed)).toBe(countEvents(log));
      expect(checkpoint.rebuilt_at).not.toBeNull();
    }
    // The swapped-in tables carry the migration's index names, so rebuilds never make the schema drift.
    const { rows: indexes } = await sql<{
      indexname: string;
    }>`select indexname from pg_indexes where tablename = 'incidents' order by indexname`.execute(
      test.database.db,
    );
    expect(indexes.map((index) => index.indexname)).toContain('incidents_pkey');
    expect(indexes.map((index) => index.indexname)).toContain('incidents_tags');
    expect(indexes.map((index) => index.indexname).filter((name) => name.includes('rebuild'))).toEqual([]);
  });

  it('takes in the events appended during a requested rebuild, exactly as a quiet replay does', async () => {
    const seed = randomInt(2 ** 31);
    const orgs = [`during${seed}`];
    const first = generateLog({ seed, orgs, incidents: 20, events: 400 });
    await waitForCheckpoints(test.database, await appendLog(store, first));

    const second = generateLog({ seed: seed + 1, orgs: [`during${seed}x`], incidents: 20, events: 400 });
    for (const name of PROJECTION_NAMES) expect(await requestRebuild(test.database, name)).toBe(true);
    expect(await requestRebuild(test.database, 'no_such_projection')).toBe(false);
    const [head] = await Promise.all([
      appendLog(store, second),
      // Joins the rebuild each leader started on the request (or starts it, and the request joins it).
      ...PROJECTION_NAMES.map((name) => rebuildProjection({ database: test.database, store, name })),
    ]);
    await waitForCheckpoints(test.database, head);
    const live = await dumpReadModels(test.database);
    expect(live.incidents!.split('\n').filter((line) => line.includes(`during${seed}x`))).toHaveLength(20);

    for (const name of PROJECTION_NAMES) await rebuildProjection({ database: test.database, store, name });
    expect(await dumpReadModels(test.database)).toEqual(live);
    const pending = await test.database.db
      .selectFrom('projection_checkpoints')
      .select('name')
      .where('rebuild_requested_at', 'is not', null)
      .execute();
    expect(pending).toEqual([]);
  });
});
