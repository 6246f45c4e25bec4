import { randomInt } from 'node:crypto';
import { expect, it } from 'vitest';
import { PROJECTION_NAMES, rebuildProjection } from '../../projections/index.ts';
import {
  appendLog,
  countEvents,
  dumpReadModels,
  generateLog,
  seededRandom,
  waitForCheckpoints,
} from './fixtures.ts';
import {
  ALL,
  describeWorkerProcesses,
  eventsProcessed,
  expectEachEventAppliedOnce,
  spawnWorker,
} from './processes.ts';

describeWorkerProcesses('projection workers in separate processes, killed with SIGKILL', (setup) => {
  it('restarted after kills at random instants, it applies every event once and its rows equal a clean rebuild', async () => {
    const { test } = setup;
    const store = test.store;
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
      await worker.waitForLead('audit');
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
