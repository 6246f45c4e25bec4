import { randomInt } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { PROJECTION_NAMES, rebuildProjection } from '../../projections/index.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';
import { appendLog, countEvents, createAuditTable, dumpReadModels, generateLog, seededRandom, waitForCheckpoints, type PlannedAppend } from './fixtures.ts';
import { spawnWorker } from './processes.ts';

const ALL = [...PROJECTION_NAMES, 'audit'];
if (!serverUrl) console.warn('projection crash tests: SKIPPED (DATABASE_URL is not set; PGlite cannot be shared between processes)');

describe.skipIf(!serverUrl)('projection workers in separate processes, killed with SIGKILL', () => {
  let test: TestDatabase;
  let store: PostgresEventStore;
  beforeAll(async () => {
    test = await openTestDatabase({ kind: 'server' });
    store = new PostgresEventStore(test.database);
    await createAuditTable(test.database);
  });
  afterAll(async () => {
    await test?.cleanup();
  });

  const processed = async () => {
    const rows = await test.database.db.selectFrom('projection_checkpoints').select(['name', 'events_processed']).where('name', 'in', ALL).execute();
    return Object.fromEntries(ALL.map((name) => [name, Number(rows.find((row) => row.name === name)?.events_processed ?? 0)]));
  };

  /** Each of the log's events applied exactly once by the audit projection, and every projection counted each once. */
  async function expectEachEventAppliedOnce(log: PlannedAppend[], processedBefore: Record<string, number>): Promise<void> {
    const ids = log.flatMap((append) => append.events.map((event) => event.eventId));
    const { rows } = await sql<{ events: string; least: number; most: number }>`
      select count(*) as events, min(applied) as least, max(applied) as most from projection_audit where event_id = any(${ids}::text[])`.execute(test.database.db);
    expect(rows[0]).toEqual({ events: String(ids.length), least: 1, most: 1 });
    const after = await processed();
    expect(Object.fromEntries(ALL.map((name) => [name, after[name]! - processedBefore[name]!]))).toEqual(Object.fromEntries(ALL.map((name) => [name, ids.length])));
  }

  it('restarted after kills at random instants, it applies every event once and its rows equal a clean rebuild', async () => {
    const seed = randomInt(2 ** 31);
    const random = seededRandom(seed);
    const orgs = [`crash${seed}a`, `crash${seed}b`, `crash${seed}c`];
    const log = generateLog({ seed, orgs, incidents: 120, events: 3000 });
    const processedBefore = await processed();
    const half = Math.floor(log.length / 2);
    await appendLog(store, log.slice(0, half));
    // The second half lands while the workers are being killed.
    const appending = appendLog(store, log.slice(half));

    const killedAt: number[] = [];
    const total = countEvents(log);
    for (let round = 0; round < 6; round++) {
      // Kill when the audit projection has passed a random event still ahead of it, give or take a few ms.
      const audit = await test.database.db.selectFrom('projection_checkpoints').select('position').where('name', '=', 'audit').executeTakeFirst();
      const ahead = await store.readAll({ fromPosition: audit?.position ?? null, streamPrefix: 'incident-', limit: 5000 });
      const worker = spawnWorker(test.url!, 10 + random.int(60));
      await worker.waitForLine((line) => line.msg === 'leading projection' && line.projection === 'audit');
      if (ahead.length > 0) await waitForCheckpoints(test.database, ahead[random.int(ahead.length)]!.position, ['audit']);
      await new Promise((resolve) => setTimeout(resolve, random.int(40)));
      await worker.kill('SIGKILL');
      killedAt.push((await processed()).audit! - processedBefore.audit!);
    }
    const head = await appending;
    // At least some kills must have landed mid-log, or this test proves nothing.
    expect(killedAt.filter((processed) => processed > 0 && processed < total).length, `seed ${seed}, killed at ${killedAt.join(', ')}`).toBeGreaterThan(0);

    const last = spawnWorker(test.url!, 100);
    try {
      await waitForCheckpoints(test.database, head, ALL, 45_000);
    } finally {
      expect(await last.kill('SIGTERM')).toBe(0);
    }
    await expectEachEventAppliedOnce(log, processedBefore);

    const live = await dumpReadModels(test.database);
    for (const name of PROJECTION_NAMES) await rebuildProjection({ database: test.database, store, name });
    expect(await dumpReadModels(test.database), `seed ${seed}`).toEqual(live);
  }, 60_000);

  it('of two workers started together, one leads each projection and the other takes over when it is killed', async () => {
    const seed = randomInt(2 ** 31);
    const log = generateLog({ seed, orgs: [`pair${seed}`], incidents: 60, events: 1500 });
    const processedBefore = await processed();
    const before = await store.headPosition('incident-');
    const head = await appendLog(store, log);
    const positions = (await store.readAll({ fromPosition: before, streamPrefix: 'incident-', limit: 5000 })).map((event) => event.position);

    const first = spawnWorker(test.url!, 10);
    const second = spawnWorker(test.url!, 10);
    try {
      await Promise.all(ALL.map((name) => Promise.any([first, second].map((worker) => worker.waitForLine((line) => line.msg === 'leading projection' && line.projection === name)))));
      // Exactly one leader per projection, however they split between the two.
      expect([...first.led(), ...second.led()].sort()).toEqual([...ALL].sort());
      const victim = first.led().includes('audit') ? first : second;
      const survivor = victim === first ? second : first;
      const taken = victim.led();

      await waitForCheckpoints(test.database, positions[Math.floor(positions.length / 3) + randomInt(positions.length / 3)]!, ['audit']);
      await victim.kill('SIGKILL');
      const atKill = await processed();
      expect(atKill.audit! - processedBefore.audit!, 'the victim was still projecting when killed').toBeLessThan(countEvents(log));

      await Promise.all(taken.map((name) => survivor.waitForLine((line) => line.msg === 'leading projection' && line.projection === name)));
      await waitForCheckpoints(test.database, head, ALL, 45_000);
      expect(survivor.led().sort()).toEqual([...ALL].sort());
      await expectEachEventAppliedOnce(log, processedBefore);
    } finally {
      await Promise.all([first.kill('SIGTERM'), second.kill('SIGTERM')]);
    }
  }, 60_000);
});
