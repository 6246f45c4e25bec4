import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PROJECTION_NAMES, PROJECTORS } from '../../projections/catalog.ts';
import { ProjectionProgress } from '../../projections/progress.ts';
import { INCIDENT_STREAM_PREFIX } from '../../projections/projector.ts';
import { startProjectionDaemon } from '../../projections/workers.ts';
import type { EventStore } from '../../src/eventstore/port.ts';
import { DaemonCommittedEvents } from '../../src/live/daemon-committed.ts';
import { databaseLabel, useTestStore } from '../support/database.ts';
import { appendLog, generateLog, waitForCheckpoints } from '../projections/fixtures.ts';
import { observedStore, until, type StoreUse } from './support.ts';

describe(`the live feed of a process that runs the projection daemon (${databaseLabel})`, () => {
  const scope = useTestStore();

  /** What the feed handed out, each event checked against the read models at that moment. */
  async function follow(feed: DaemonCommittedEvents, progress: ProjectionProgress) {
    const handed: string[] = [];
    const early: string[] = [];
    feed.onCommitted((events) => {
      for (const event of events) {
        handed.push(event.eventId);
        if (!progress.reached(event.position)) early.push(event.eventId);
      }
    });
    await feed.start();
    return { handed, early };
  }
  /** A fresh org's varied log, appended: the position of its last event. */
  const appendFreshLog = (store: EventStore) => {
    const seed = randomInt(2 ** 31);
    return appendLog(store, generateLog({ seed, orgs: [`feed${seed}`], incidents: 5, events: 120 }));
  };
  const eventIds = async (store: EventStore, after: string | null) =>
    (await store.readAll({ fromPosition: after, streamPrefix: INCIDENT_STREAM_PREFIX, limit: 10_000 })).map(
      (event) => event.eventId,
    );

  it('leading some projections, it hands out each event once the other process has projected it too, from its own batches', async () => {
    const { test, store } = scope;
    const use: StoreUse = { subscriptions: [], logReads: [] };
    const names = [...PROJECTORS.keys()];
    const ours = names.slice(0, Math.ceil(names.length / 2));
    const theirs = names.filter((name) => !ours.includes(name));
    const here = startProjectionDaemon({
      database: test.database,
      store,
      projectors: ours.map((name) => PROJECTORS.get(name)!),
    });
    const progress = new ProjectionProgress(test.database, PROJECTION_NAMES);
    const feed = new DaemonCommittedEvents(here, observedStore(store, use), progress);
    let elsewhere: { stop(): Promise<void> } | undefined;
    try {
      const { handed, early } = await follow(feed, progress);
      const from = feed.position;
      const head = await appendFreshLog(store);
      await waitForCheckpoints(test.database, head, ours);
      // Our read models have it all; the others' have nothing yet, so nothing may be handed out.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(handed).toEqual([]);

      // The other process starts leading the rest and catches up.
      elsewhere = startProjectionDaemon({
        database: test.database,
        store,
        projectors: theirs.map((name) => PROJECTORS.get(name)!),
      });
      const expected = await eventIds(store, from);
      await until(() => handed.length >= expected.length, `${expected.length} events handed out`);
      expect(handed).toEqual(expected);
      expect(early).toEqual([]);
      expect(use.logReads).toEqual([]);
      expect(use.subscriptions).toEqual([]);
    } finally {
      await feed.stop();
      await progress.stop();
      await elsewhere?.stop();
      await here.stop();
    }
  });

  it('leading none, it reads what the leader committed from the store, each event once, in order', async () => {
    const { test, store } = scope;
    const use: StoreUse = { subscriptions: [], logReads: [] };
    const leader = startProjectionDaemon({
      database: test.database,
      store,
      projectors: [...PROJECTORS.values()],
    });
    const standby = startProjectionDaemon({ database: test.database, store, projectors: [] });
    const progress = new ProjectionProgress(test.database, PROJECTION_NAMES);
    const feed = new DaemonCommittedEvents(standby, observedStore(store, use), progress);
    try {
      const { handed, early } = await follow(feed, progress);
      const from = feed.position;
      const head = await appendFreshLog(store);
      await waitForCheckpoints(test.database, head);
      const expected = await eventIds(store, from);
      await until(() => handed.length >= expected.length, `${expected.length} events handed out`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(handed).toEqual(expected);
      expect(early).toEqual([]);
      expect(use.logReads.length).toBeGreaterThan(0);
      expect(use.subscriptions).toEqual([]);
    } finally {
      await feed.stop();
      await progress.stop();
      await standby.stop();
      await leader.stop();
    }
  });
});
