import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PROJECTORS } from '../../projections/catalog.ts';
import { PROJECTION_NAMES, rebuildProjection, startProjectionWorkers } from '../../projections/index.ts';
import { projectEvents, toProjectedEvent } from '../../projections/projector.ts';
import { databaseLabel, useTestStore } from '../support/database.ts';
import {
  appendLog,
  countEvents,
  dumpReadModels,
  generateLog,
  servedRows,
  waitForCheckpoints,
} from './fixtures.ts';

describe(`replaying the incident log on ${databaseLabel}`, () => {
  const scope = useTestStore();

  it('serves exactly the fold of the events, and two replays give byte-identical tables', async () => {
    const { test, store } = scope;
    const seed = randomInt(2 ** 31);
    const orgs = [`replay${seed}a`, `replay${seed}b`];
    const log = generateLog({ seed, orgs, incidents: 30, events: 600 });
    const head = await appendLog(store, log);
    const workers = startProjectionWorkers({ database: test.database, store });
    try {
      await waitForCheckpoints(test.database, head);

      // The rows served are what the pure projectors make of the events (ids, times and order included).
      const events = (await store.readAll({ streamPrefix: 'incident-', limit: 10_000 })).map(
        toProjectedEvent,
      );
      for (const projector of PROJECTORS.values()) {
        const served = await servedRows(test.database, projector, orgs);
        expect(served, `${projector.table} (seed ${seed})`).toEqual(projectEvents(projector, events));
      }

      const live = await dumpReadModels(test.database);
      for (const name of PROJECTION_NAMES) await rebuildProjection({ database: test.database, store, name });
      const first = await dumpReadModels(test.database);
      for (const name of PROJECTION_NAMES) await rebuildProjection({ database: test.database, store, name });
      const second = await dumpReadModels(test.database);
      expect(first).toEqual(live);
      expect(second).toEqual(first);

      const checkpoints = await test.database.db
        .selectFrom('projection_checkpoints')
        .select(['name', 'position', 'events_processed', 'state'])
        .orderBy('name')
        .execute();
      expect(
        checkpoints.map((checkpoint) => ({
          ...checkpoint,
          events_processed: Number(checkpoint.events_processed),
        })),
      ).toEqual(
        [...PROJECTION_NAMES]
          .sort()
          .map((name) => ({ name, position: head, events_processed: countEvents(log), state: 'running' })),
      );
    } finally {
      await workers.stop();
    }
  });
});
