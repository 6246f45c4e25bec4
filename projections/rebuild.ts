import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../src/db/database.ts';
import type { Schema } from '../src/db/schema.ts';
import { comparePositions, type EventStore } from '../src/eventstore/port.ts';
import {
  INCIDENT_STREAM_PREFIX,
  toProjectedEvent,
  type ProjectedEvent,
  type Projector,
} from './projector.ts';
import {
  lockCheckpoint,
  markRebuildStarted,
  recordRebuildFailure,
  recordRebuildProgress,
  recordSwapped,
} from './checkpoints.ts';
import { applyEvents } from './rows.ts';

/** Events per replay transaction: large enough that a busy row is written once for many events. */
const REPLAY_BATCH = 20_000;

export type RebuildProgress = (done: number, total: number) => void;

/**
 * The live side of a projection, as a rebuild running beside it needs it (the daemon's `Lane`).
 * The handshake between the live daemon and a rebuild:
 * 1. The daemon moves `position` after each batch it commits; the rebuild reads it each time it picks
 *    events, and replays into the fresh table only events up to it, so the two never overlap.
 * 2. To swap, the rebuild calls `pause()`: the daemon finishes the batch in flight (which may move
 *    `position` once more) and then holds every lane between two batches.
 * 3. Held, the rebuild replays what is left up to `position`, swaps the fresh table in at that
 *    checkpoint (one transaction that locks the checkpoint row and checks it did not move), and calls
 *    the function `pause` returned: the daemon's next batch writes to the swapped-in table.
 * 4. While it rebuilds, the daemon records its commits as state `rebuilding`; after it, a lane parked
 *    at a failed event tries that event again at once (`rebuildLane`).
 * A lane whose lead is lost aborts `signal`: the rebuild drops its fresh table and ends with Stopped.
 */
export interface LiveProjection {
  readonly database: Database;
  readonly store: EventStore;
  readonly projector: Projector;
  /** Its lines name the projection. */
  readonly logger: Logger;
  /** Aborts when this process stops leading the projection. */
  readonly signal: AbortSignal;
  /** The live checkpoint: every event up to it is in the live table. */
  readonly position: string | null;
  /** The state to record once the rebuild is over: `failed` while the live side is stuck on an event. */
  liveState(): 'running' | 'failed';
  /** Holds the live side between two batches; it carries on when the returned function is called. */
  pause(): Promise<() => void>;
  /** Hears how far the rebuild is: events replayed into the fresh table, of about how many. */
  rebuildProgress(done: number, total: number): void;
}

/** The live checkpoint moved under this worker: another one took the projection over. */
export class LeadershipLost extends Error {
  override readonly name = 'LeadershipLost';
}

/** The worker is stopping: give up quietly. */
export class Stopped extends Error {
  override readonly name = 'Stopped';
}

/** One projection's part in a shared rebuild: its fresh table, and how it ended if it ended early. */
interface Lane {
  readonly live: LiveProjection;
  readonly scratch: string;
  /** The last event replayed into the fresh table: the lane takes the log in order from there. */
  replayed: string | null;
  /** Events replayed into the fresh table. */
  done: number;
  swapped: boolean;
  failed: boolean;
  error?: unknown;
}

/** The lane whose live side is furthest behind. */
function lowest(lanes: readonly Lane[]): Lane {
  return lanes.reduce((low, lane) =>
    comparePositions(lane.live.position, low.live.position) < 0 ? lane : low,
  );
}

/**
 * Rebuilds several projections in one pass over the log: every event is read and validated once,
 * and each projection replays it into a fresh copy of its table while the live table keeps serving
 * and being updated. Then each copy is swapped in (one transaction per projection, at its live
 * checkpoint) and its live side carries on from there. A projection that fails drops out alone.
 * Resolves with each projection's outcome, in the order given.
 */
export async function rebuildWhileLive(
  lives: readonly LiveProjection[],
): Promise<PromiseSettledResult<void>[]> {
  if (lives.length === 0) return [];
  const { database, store } = lives[0]!;
  const db = database.db;
  const lanes: Lane[] = lives.map((live) => ({
    live,
    scratch: `${live.projector.table}__rebuild`,
    replayed: null,
    done: 0,
    swapped: false,
    failed: false,
  }));
  const running = () => lanes.filter((lane) => !lane.failed && !lane.swapped);
  const startedAt = performance.now();
  /** About how many events there are to replay. */
  let total = 0;

  const fail = async (lane: Lane, error: unknown): Promise<void> => {
    if (lane.failed) return;
    lane.failed = true;
    lane.error = error;
    await abandon(lane, error);
  };
  /** Runs one lane's own step: its failure ends that lane only. */
  const guarded = async (lane: Lane, step: () => Promise<void>): Promise<void> => {
    try {
      await step();
    } catch (error) {
      await fail(lane, error);
    }
  };
  // Reads the batch after `after` and validates the events in it up to `limit`.
  const fetch = (after: string | null, limit: string | null) => {
    const batch = store
      .readAll({ fromPosition: after, streamPrefix: INCIDENT_STREAM_PREFIX, limit: REPLAY_BATCH })
      .then((events) => {
        const due =
          events.length > 0 && comparePositions(events.at(-1)!.position, limit) <= 0
            ? events
            : events.filter((event) => comparePositions(event.position, limit) <= 0);
        return {
          events: due.map(toProjectedEvent),
          last: due.length < events.length || events.length < REPLAY_BATCH,
        };
      });
    // A batch fetched ahead may never be awaited: its failure must not go unhandled.
    batch.catch(() => {});
    return batch;
  };

  // Replays the log up to and including `limit`, from where the lane furthest behind stands: each
  // lane takes, in order, the events after the last one it took and up to its own live checkpoint
  // (which may stand before `limit`, and move on later). The next batch is read and validated while
  // this one is being written. Returns how many events were read.
  const replayUpTo = async (limit: string | null): Promise<number> => {
    const from = running().reduce<string | null | undefined>(
      (low, lane) => (low === undefined || comparePositions(lane.replayed, low) < 0 ? lane.replayed : low),
      undefined,
    );
    if (from === undefined) return 0;
    let read = 0;
    let next = fetch(from, limit);
    for (;;) {
      for (const lane of running()) {
        if (lane.live.signal.aborted)
          await fail(lane, new Stopped(`rebuild of ${lane.live.projector.name} interrupted`));
      }
      if (running().length === 0) return read;
      const { events, last } = await next;
      if (events.length === 0) return read;
      if (!last) next = fetch(events.at(-1)!.position, limit);
      read += events.length;
      await Promise.all(running().map((lane) => guarded(lane, () => replayInto(lane, events))));
      for (const lane of running()) lane.live.rebuildProgress(lane.done, Math.max(total, lane.done));
      if (last) return read;
    }
  };

  const replayInto = async (lane: Lane, events: readonly ProjectedEvent[]): Promise<void> => {
    const after = lane.replayed;
    const upTo = lane.live.position;
    const wanted = (position: string) =>
      comparePositions(position, after) > 0 && comparePositions(position, upTo) <= 0;
    const taken =
      wanted(events[0]!.position) && wanted(events.at(-1)!.position)
        ? events
        : events.filter((event) => wanted(event.position));
    if (taken.length === 0) return;
    await db.transaction().execute(async (trx) => {
      await applyEvents(database, trx, lane.live.projector, lane.scratch, taken);
      await recordRebuildProgress(trx, lane.live.projector.name, lane.done + taken.length);
    });
    lane.replayed = taken.at(-1)!.position;
    lane.done += taken.length;
  };

  const prepare = async (lane: Lane): Promise<void> => {
    const { projector } = lane.live;
    lane.live.logger.info('rebuild started');
    await sql`drop table if exists ${sql.table(lane.scratch)}`.execute(db);
    await sql`create table ${sql.table(lane.scratch)} (like ${sql.table(projector.table)} including all)`.execute(
      db,
    );
    await markRebuildStarted(database, projector.name, total);
    lane.live.rebuildProgress(0, total);
  };

  const swapIn = async (lane: Lane): Promise<void> => {
    const { live } = lane;
    const name = live.projector.name;
    await db.transaction().execute(async (trx) => {
      const checkpoint = await lockCheckpoint(trx, name);
      if (checkpoint === undefined || comparePositions(checkpoint, live.position) !== 0)
        throw new LeadershipLost(`checkpoint of ${name} moved during its rebuild`);
      await swapTables(trx, live.projector.table, lane.scratch);
      await recordSwapped(trx, name, live.liveState(), lane.done);
    });
    live.rebuildProgress(lane.done, Math.max(total, lane.done));
    live.logger.info(
      { events: lane.done, seconds: Math.round(performance.now() - startedAt) / 1000 },
      'rebuild swapped in',
    );
  };

  try {
    total = await store.countEvents({ streamPrefix: INCIDENT_STREAM_PREFIX });
    await Promise.all(lanes.map((lane) => guarded(lane, () => prepare(lane))));

    // Chase the live checkpoints while the live sides keep the old tables current; then swap in the
    // projection furthest behind, holding only its live side for the last few events, and go on
    // with the others. One stuck far behind (failed) never holds the others' live sides.
    while (running().length > 0) {
      let read: number;
      do read = await replayUpTo(lowest(running()).live.position);
      while (read >= REPLAY_BATCH && running().length > 0);
      if (running().length === 0) break;
      const lane = lowest(running());
      // Its checkpoint may move once more while the batch in flight commits: the others then take
      // only what they have projected live, and the rest on a later round from where they stopped.
      const resume = await lane.live.pause();
      try {
        await replayUpTo(lane.live.position);
        if (!lane.failed) await guarded(lane, () => swapIn(lane));
      } finally {
        resume();
      }
      lane.swapped = true;
    }
  } catch (error) {
    // What all lanes share failed: reading, validating or counting the log.
    await Promise.all(running().map((lane) => fail(lane, error)));
  }
  return lanes.map((lane): PromiseSettledResult<void> =>
    lane.failed ? { status: 'rejected', reason: lane.error } : { status: 'fulfilled', value: undefined },
  );
}

/** Drops what a lane built and, unless it merely stopped or lost the lead, records why it failed. */
async function abandon(lane: Lane, error: unknown): Promise<void> {
  const { database, projector, logger } = lane.live;
  const db = database.db;
  await sql`drop table if exists ${sql.table(lane.scratch)}`.execute(db).catch(() => {});
  if (error instanceof Stopped || error instanceof LeadershipLost) return;
  const message = error instanceof Error ? error.message : String(error);
  await recordRebuildFailure(database, projector.name, lane.live.liveState(), message).catch(() => {});
  logger.error({ err: error }, 'rebuild failed');
}

/**
 * Puts `scratch` in the place of `table`, and gives its indexes (and so its primary key constraint)
 * the names the live ones had, so a schema never drifts through rebuilds.
 */
export async function swapTables(db: Kysely<Schema>, table: string, scratch: string): Promise<void> {
  const indexesOf = async (name: string) =>
    (
      await sql<{
        indexname: string;
        indexdef: string;
      }>`select indexname, indexdef from pg_indexes where schemaname = current_schema() and tablename = ${name}`.execute(
        db,
      )
    ).rows;
  // What an index is, whatever its name and table: uniqueness, method, columns, predicate.
  const shape = (definition: string) =>
    `${definition.startsWith('CREATE UNIQUE') ? 'unique' : ''}${definition.slice(definition.indexOf(' USING '))}`;
  const liveIndexes = await indexesOf(table);
  const freshIndexes = await indexesOf(scratch);
  const retired = `${table}__retired`;
  await sql`alter table ${sql.table(table)} rename to ${sql.id(retired)}`.execute(db);
  await sql`alter table ${sql.table(scratch)} rename to ${sql.id(table)}`.execute(db);
  await sql`drop table ${sql.table(retired)}`.execute(db);
  for (const fresh of freshIndexes) {
    const original = liveIndexes.find((index) => shape(index.indexdef) === shape(fresh.indexdef));
    if (original && original.indexname !== fresh.indexname) {
      await sql`alter index ${sql.id(fresh.indexname)} rename to ${sql.id(original.indexname)}`.execute(db);
    }
  }
}
