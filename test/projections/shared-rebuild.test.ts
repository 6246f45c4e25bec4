import { randomInt } from 'node:crypto';
import { sql } from 'kysely';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EventStore } from '../../src/eventstore/port.ts';
import { UnprojectableEvent, type Projector } from '../../projections/projector.ts';
import { rebuildWhileLive, type LiveProjection } from '../../projections/rebuild.ts';
import { ensureCheckpoint } from '../../projections/checkpoints.ts';
import { databaseLabel, useTestStore, type TestDatabase } from '../support/database.ts';
import { appendLog, auditProjector, countEvents, generateLog } from './fixtures.ts';

type Audit = { event_id: string; applied: number };

/** The audit projection (each event counted where it lands) on a table of its own. */
async function auditOn(test: TestDatabase, name: string): Promise<Projector<Audit>> {
  await sql`create table ${sql.table(name)} (event_id text primary key, applied integer not null)`.execute(
    test.database.db,
  );
  await ensureCheckpoint(test.database.db, name);
  return { ...auditProjector, name, table: name };
}

/**
 * A live side that stands still at `position` (as one that is caught up and idle does) and records
 * how far the rebuild had got each time it was held. With `committedWhenHeld`, the batch it had in
 * flight when it was asked to hold commits first and moves it there, as a worker's does.
 */
async function idleLive(
  test: TestDatabase,
  store: EventStore,
  projector: Projector,
  position: string | null,
  committedWhenHeld?: string,
) {
  const moveTo = (to: string | null) =>
    test.database.db
      .updateTable('projection_checkpoints')
      .set({ position: to })
      .where('name', '=', projector.name)
      .execute();
  await moveTo(position);
  const heldAt: number[] = [];
  let done = 0;
  const live: LiveProjection = {
    database: test.database,
    store,
    projector: projector as Projector,
    logger: pino({ enabled: false }),
    signal: new AbortController().signal,
    get position() {
      return position;
    },
    liveState: () => 'running',
    async pause() {
      if (committedWhenHeld !== undefined) {
        await moveTo(committedWhenHeld);
        position = committedWhenHeld;
      }
      heldAt.push(done);
      return () => {};
    },
    rebuildProgress(replayed) {
      done = Math.max(done, replayed);
    },
  };
  return { live, heldAt };
}

async function auditCounts(test: TestDatabase, table: string): Promise<{ rows: number; wrong: number }> {
  const { rows } = await sql<{ rows: number; wrong: number }>`
    select count(*)::int as rows, count(*) filter (where applied <> 1)::int as wrong from ${sql.table(table)}`.execute(
    test.database.db,
  );
  return rows[0]!;
}

describe(`one rebuild pass for several projections, on ${databaseLabel}`, () => {
  const scope = useTestStore();
  let total: number;
  let head: string;
  beforeAll(async () => {
    const seed = randomInt(2 ** 31);
    const log = generateLog({ seed, orgs: [`pass${seed}`], incidents: 12, events: 300 });
    total = countEvents(log);
    head = (await appendLog(scope.store, log))!;
  });

  it('reads each event once for all of them, and a projection that fails drops out alone', async () => {
    const { test, store } = scope;
    const audit = await auditOn(test, 'audit_pass');
    const victim = (await store.readAll({ limit: 100 })).at(-1)!.eventId;
    const flaky: Projector<Audit> = {
      ...(await auditOn(test, 'flaky_pass')),
      evolve(row, event) {
        if (event.eventId === victim) throw new UnprojectableEvent(`cannot take ${event.eventId}`);
        return auditProjector.evolve(row, event);
      },
    };
    let read = 0;
    const counting: EventStore = Object.create(store, {
      readAll: {
        value: async (options: Parameters<EventStore['readAll']>[0]) => {
          const events = await store.readAll(options);
          read += events.length;
          return events;
        },
      },
    });

    const [kept, dropped] = await rebuildWhileLive([
      (await idleLive(test, counting, audit, head)).live,
      (await idleLive(test, counting, flaky, head)).live,
    ]);

    expect(read).toBe(total);
    expect(kept).toEqual({ status: 'fulfilled', value: undefined });
    expect(dropped!.status).toBe('rejected');
    expect((dropped as PromiseRejectedResult).reason).toBeInstanceOf(UnprojectableEvent);
    expect(await auditCounts(test, 'audit_pass')).toEqual({ rows: total, wrong: 0 });
    // The failed one keeps its old table, leaves no copy behind, and says why.
    expect(await auditCounts(test, 'flaky_pass')).toEqual({ rows: 0, wrong: 0 });
    const { rows: leftovers } = await sql<{
      copy: string | null;
    }>`select to_regclass('flaky_pass__rebuild')::text as copy`.execute(test.database.db);
    expect(leftovers[0]!.copy).toBeNull();
    const checkpoints = await test.database.db
      .selectFrom('projection_checkpoints')
      .selectAll()
      .where('name', 'in', ['audit_pass', 'flaky_pass'])
      .orderBy('name')
      .execute();
    expect(checkpoints[0]).toMatchObject({ name: 'audit_pass', last_error: null });
    expect(Number(checkpoints[0]!.rebuild_done)).toBe(total);
    expect(checkpoints[0]!.rebuilt_at).not.toBeNull();
    expect(checkpoints[1]).toMatchObject({ name: 'flaky_pass', rebuilt_at: null });
    expect(checkpoints[1]!.last_error).toBe(`rebuild failed: cannot take ${victim}`);
  });

  it('swaps in the projection furthest behind first, and holds each live side only for its own last events', async () => {
    const { test, store } = scope;
    const early = (await store.readAll({ limit: 50 })).at(-1)!.position;
    const behind = await idleLive(test, store, await auditOn(test, 'audit_behind'), early);
    const ahead = await idleLive(test, store, await auditOn(test, 'audit_ahead'), head);

    const outcomes = await rebuildWhileLive([ahead.live, behind.live]);

    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(await auditCounts(test, 'audit_behind')).toEqual({ rows: 50, wrong: 0 });
    expect(await auditCounts(test, 'audit_ahead')).toEqual({ rows: total, wrong: 0 });
    // Each was held once, when every event it still needed had been replayed: the one ahead was
    // never held while the stretch between the two was replayed.
    expect(behind.heldAt).toEqual([50]);
    expect(ahead.heldAt).toEqual([total]);
  });

  it('gives every projection the events a live side committed while it was being held', async () => {
    const { test, store } = scope;
    const events = await store.readAll({ limit: 200 });
    const at = (count: number) => events[count - 1]!.position;
    // The one behind is held first; its in-flight batch lands past where the other stood, and the
    // other's own in-flight batch then carries it to the head.
    const mover = await idleLive(test, store, await auditOn(test, 'audit_mover'), at(50), at(200));
    const other = await idleLive(test, store, await auditOn(test, 'audit_other'), at(100), head);

    const outcomes = await rebuildWhileLive([other.live, mover.live]);

    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(await auditCounts(test, 'audit_mover')).toEqual({ rows: 200, wrong: 0 });
    expect(await auditCounts(test, 'audit_other')).toEqual({ rows: total, wrong: 0 });
  });
});
