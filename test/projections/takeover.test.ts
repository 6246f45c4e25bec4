import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore } from '../../src/eventstore/port.ts';
import { PROJECTION_NAMES } from '../../projections/index.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';
import { appendLog, countEvents, createAuditTable, generateLog, waitForCheckpoints } from './fixtures.ts';
import { eventsProcessed, expectEachEventAppliedOnce, killAllWorkers, spawnWorker } from './processes.ts';

const ALL = [...PROJECTION_NAMES, 'audit'];
if (!serverUrl)
  console.warn(
    'projection takeover test: SKIPPED (DATABASE_URL is not set; PGlite cannot be shared between processes)',
  );

describe.skipIf(!serverUrl)('two projection worker processes', () => {
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

  it('of two workers started together, one leads each projection and the other takes over when it is killed', async () => {
    const seed = randomInt(2 ** 31);
    const log = generateLog({ seed, orgs: [`pair${seed}`], incidents: 50, events: 1200 });
    const processedBefore = await eventsProcessed(test.database, ALL);
    const before = await store.headPosition('incident-');
    const head = await appendLog(store, log);
    const positions = (
      await store.readAll({ fromPosition: before, streamPrefix: 'incident-', limit: 5000 })
    ).map((event) => event.position);

    const first = spawnWorker(test.url!, 10, test.eventStoreUrl);
    const second = spawnWorker(test.url!, 10, test.eventStoreUrl);
    try {
      await Promise.all(
        ALL.map((name) =>
          Promise.any(
            [first, second].map((worker) =>
              worker.waitForLine((line) => line.msg === 'leading projection' && line.projection === name),
            ),
          ),
        ),
      );
      // Exactly one leader per projection, however they split between the two.
      expect([...first.led(), ...second.led()].sort()).toEqual([...ALL].sort());
      const victim = first.led().includes('audit') ? first : second;
      const survivor = victim === first ? second : first;
      const taken = victim.led();

      await waitForCheckpoints(
        test.database,
        positions[Math.floor(positions.length / 3) + randomInt(Math.floor(positions.length / 3))]!,
        ['audit'],
      );
      await victim.kill('SIGKILL');
      const atKill = await eventsProcessed(test.database, ALL);
      expect(
        atKill.audit! - processedBefore.audit!,
        'the victim was still projecting when killed',
      ).toBeLessThan(countEvents(log));

      await Promise.all(
        taken.map((name) =>
          survivor.waitForLine((line) => line.msg === 'leading projection' && line.projection === name),
        ),
      );
      await waitForCheckpoints(test.database, head, ALL, 45_000);
      expect(survivor.led().sort()).toEqual([...ALL].sort());
      await expectEachEventAppliedOnce(test.database, log, ALL, processedBefore);
    } finally {
      await Promise.all([first.kill('SIGTERM'), second.kill('SIGTERM')]);
    }
  }, 90_000);
});
