import { randomInt } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { EventStore, SubscribeOptions } from '../../src/eventstore/port.ts';
import { PROJECTORS } from '../../projections/catalog.ts';
import type { CommittedBatch } from '../../projections/daemon.ts';
import { PROJECTION_NAMES } from '../../projections/index.ts';
import { startProjectionDaemon } from '../../projections/workers.ts';
import { databaseLabel, useTestStore } from '../support/database.ts';
import { appendLog, countEvents, generateLog, waitForCheckpoints } from './fixtures.ts';

describe(`the projection daemon, on ${databaseLabel}`, () => {
  const scope = useTestStore();

  it('follows the log with one subscription for every projection and tells each committed event once, in order', async () => {
    const { test, store } = scope;
    let subscriptions = 0;
    const counting: EventStore = Object.create(store, {
      subscribe: {
        value: (options: SubscribeOptions) => {
          subscriptions++;
          return store.subscribe(options);
        },
      },
    });
    // Appends start once every projection is led: one joining later would resubscribe.
    let leading = 0;
    let allLeading!: () => void;
    const led = new Promise<void>((resolve) => (allLeading = resolve));
    const lines = new Writable({
      write(chunk: Buffer, _encoding, done) {
        leading += chunk.toString().split('"leading projection"').length - 1;
        if (leading === PROJECTORS.size) allLeading();
        done();
      },
    });
    const workers = startProjectionDaemon({
      database: test.database,
      store: counting,
      logger: pino(lines),
      projectors: [...PROJECTORS.values()],
    });
    await led;
    const committed: CommittedBatch[] = [];
    const unsubscribe = workers.onCommitted((batch) => committed.push(batch));
    try {
      const seed = randomInt(2 ** 31);
      const log = generateLog({ seed, orgs: [`daemon${seed}`], incidents: 10, events: 200 });
      const head = await appendLog(store, log);
      await waitForCheckpoints(test.database, head);
      // Listeners hear of a batch once its commit has returned, a moment after others can see it.
      await vi.waitFor(
        () => expect(committed.flatMap((batch) => batch.events)).toHaveLength(countEvents(log)),
        {
          timeout: 10_000,
        },
      );

      expect(subscriptions).toBe(1);
      const told = committed.flatMap((batch) => batch.events);
      const logged = await store.readAll({ streamPrefix: 'incident-', limit: 10_000 });
      expect(told.map((event) => event.eventId)).toEqual(logged.map((event) => event.eventId));
      expect(told).toHaveLength(countEvents(log));
      for (const batch of committed) {
        expect(batch.position).toBe(batch.events.at(-1)!.position);
        expect([...batch.projections].sort()).toEqual([...PROJECTION_NAMES].sort());
      }
      const checkpoints = await test.database.db
        .selectFrom('projection_checkpoints')
        .select(['name', 'position', 'events_processed'])
        .orderBy('name')
        .execute();
      expect(checkpoints.map((row) => ({ ...row, events_processed: Number(row.events_processed) }))).toEqual(
        [...PROJECTION_NAMES]
          .sort()
          .map((name) => ({ name, position: head, events_processed: countEvents(log) })),
      );
    } finally {
      unsubscribe();
      await workers.stop();
    }
  });
});
