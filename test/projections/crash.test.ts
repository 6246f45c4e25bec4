import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore } from '../../src/eventstore/port.ts';
import { PROJECTION_NAMES, rebuildProjection } from '../../projections/index.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';
import {
  appendLog,
  countEvents,
  createAuditTable,
  dumpReadModels,
  generateLog,
  seededRandom,
  waitForCheckpoints,
} from './fixtures.ts';
import { eventsProcessed, expectEachEventAppliedOnce, killAllWorkers, spawnWorker } from './processes.ts';

const ALL = [...PROJECTION_NAMES, 'audit'];
if (!serverUrl)
  console.warn(
    'projection crash test: SKIPPED (DATABASE_URL is not set; PGlite cannot be shared between processes)',
  );

describe.skipIf(!serverUrl)('projection workers in separate processes, killed with SIGKILL', () => {
  let test: TestDatabase;
  let store: EventStore;
  beforeAll(async () => {
    test = await openTestDatabase({ kind: 'server' });
    store = test.store;
    await createAuditTable(test.database);
  });
  afterAll(async () => {
    killAllWorkers();
    await test?.cleanup();
  });

  it('restarted after kills at random instants, it applies every event once and its rows equal a clean rebuild', async () => {
    const seed = randomInt(2 ** 31);
    const random = seededRandom(seed);
    const orgs = [`crash${seed}a`, `crash${seed}b`, `crash${seed}c`];
    const log = generateLog({ seed, orgs, incidents: 80, events: 2000 });
    const processedBefore = await eventsProcessed(test.database, ALL);
    const half = Math.floor(log.length / 2);
    await appendLog(store, log.slice(0, half));
    // The second half lands while the workers are being killed.
    const appending = appendLog(store, log.slice(half));

    const killedAt: number[] = [];
    const total = countEvents(log);
    for (let round = 0; round < 4; round++) {
      // Kill when the audit projection has passed one of the next few hundred events, give or take a few ms.
      const audit = await test.database.db
        .selectFrom('projection_checkpoints')
        .select('position')
        .where('name', '=', 'audit')
        .executeTakeFirst();
      const ahead = await store.readAll({
        fromPosition: audit?.position ?? null,
        streamPrefix: 'incident-',
        limit: 400,
      });
      const worker = spawnWorker(test.url!, 10 + random.int(60), test.eventStoreUrl);
      await worker.waitForLine((line) => line.msg === 'leading projection' && line.projection === 'audit');
      if (ahead.length > 0)
        await waitForCheckpoints(test.database, ahead[random.int(ahead.length)]!.position, ['audit']);
      await new Promise((resolve) => setTimeout(resolve, random.int(40)));
      await worker.kill('SIGKILL');
      killedAt.push((await eventsProcessed(test.database, ALL)).audit! - processedBefore.audit!);
    }
    const head = await appending;
    // At least some kills must have landed mid-log, or this test proves nothing.
    expect(
      killedAt.filter((processed) => processed > 0 && processed < total).length,
      `seed ${seed}, killed at ${killedAt.join(', ')}`,
    ).toBeGreaterThan(0);

    const last = spawnWorker(test.url!, 100, test.eventStoreUrl);
    try {
      await waitForCheckpoints(test.database, head, ALL, 45_000);
    } finally {
      expect(await last.kill('SIGTERM')).toBe(0);
    }
    await expectEachEventAppliedOnce(test.database, log, ALL, processedBefore);

    const live = await dumpReadModels(test.database);
    for (const name of PROJECTION_NAMES) await rebuildProjection({ database: test.database, store, name });
    expect(await dumpReadModels(test.database), `seed ${seed}`).toEqual(live);
  }, 90_000);
});
