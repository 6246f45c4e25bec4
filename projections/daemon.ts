import { sql, type RawBuilder } from 'kysely';
import { pino, type Logger } from 'pino';
import { isDatabaseUnavailable, type Database } from '../src/db/database.ts';
import { comparePositions, type EventStore, type RecordedEvent } from '../src/eventstore/port.ts';
import { sleep, subscriptionBackoff } from '../src/retry.ts';
import { advanceStatement, recordFailure } from './checkpoints.ts';
import { Lane, type LaneHost } from './lane.ts';
import { PROGRESS_CHANNEL, announce } from './notices.ts';
import {
  INCIDENT_STREAM_PREFIX,
  toProjectedEvent,
  type ProjectedEvent,
  type Projector,
} from './projector.ts';
import { planRows, rowError } from './rows.ts';

export interface DaemonOptions {
  database: Database;
  store: EventStore;
  logger?: Logger;
  /** Most events per batch. */
  batchSize?: number;
  /** Waits between the tries of a failing event; one more try than there are waits. */
  retryDelaysMs?: readonly number[];
}

/** A batch the daemon committed: its events are in the read models of `projections`. */
export interface CommittedBatch {
  /** `events` are every incident event after this position (null: the log's start) up to `position`. */
  readonly after: string | null;
  /** The position of the batch's last event: every named projection's checkpoint is there now. */
  readonly position: string;
  /** Events committed for the first time by this daemon, in log order (never one twice). */
  readonly events: readonly RecordedEvent[];
  readonly projections: readonly string[];
}

/** Called after each commit, in commit order; it must not throw and should return quickly. */
export type CommittedListener = (batch: CommittedBatch) => void;

/** A failed projection tries its event again this often, besides after a rebuild or a restart. */
const FAILED_RETRY_MS = 60_000;

/** An event as every lane takes it: read and validated once per batch. */
interface BatchEvent {
  recorded: RecordedEvent;
  projected?: ProjectedEvent;
  invalid?: unknown;
}

/** One lane's share of a batch: the events past its checkpoint, and the statement writing their rows. */
interface Share {
  lane: Lane;
  events: readonly BatchEvent[];
  rows?: RawBuilder<unknown> | null;
}

/**
 * The projection daemon of a process: one subscription to the global log for every projection this
 * process leads (a `Lane` each). Each batch is read and validated once, and applied to every lane
 * whose checkpoint it passes, all rows and checkpoints in one statement (so one short transaction,
 * holding a transaction id for that statement alone). A lane that falls behind the subscription
 * (it just joined, or retries a failed event) makes the daemon resubscribe from the lowest
 * checkpoint; lanes already past an event skip it.
 */
export class ProjectionDaemon implements LaneHost {
  readonly database: Database;
  readonly store: EventStore;
  readonly logger: Logger;
  private readonly batchSize: number;
  private readonly retryDelaysMs: readonly number[];
  private readonly lanes = new Map<string, Lane>();
  private readonly listeners = new Set<CommittedListener>();
  private readonly stopping = new AbortController();
  private readonly loop: Promise<void>;
  /** Aborts the current subscription, so the loop resubscribes from the lowest checkpoint. */
  private subscription: AbortController | null = null;
  /** The last position the current subscription delivered. */
  private readTo: string | null = null;
  /** The last position told to `onCommitted` listeners. */
  private emittedTo: string | null = null;
  private wake: () => void = () => {};
  private gates = new Set<Promise<void>>();
  private inFlight: Promise<unknown> = Promise.resolve();

  constructor(options: DaemonOptions) {
    this.database = options.database;
    this.store = options.store;
    this.logger = options.logger ?? pino({ enabled: false });
    this.batchSize = options.batchSize ?? 500;
    this.retryDelaysMs = options.retryDelaysMs ?? [200, 800, 3200, 12_800];
    this.loop = this.run();
  }

  /**
   * Hears every batch this daemon commits, in order: the in-process feed of committed events (live
   * streams, webhooks) without a subscription of their own. Returns the unsubscribe.
   */
  onCommitted(listener: CommittedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The lane of a projection this daemon carries, if any. */
  lane(name: string): Lane | undefined {
    return this.lanes.get(name);
  }

  /** Carries a projection this process now leads, from its checkpoint. */
  join(projector: Projector, position: string | null): Lane {
    if (this.lanes.has(projector.name)) throw new Error(`${projector.name} is carried already`);
    const lane = new Lane(this, projector, position, this.logger);
    this.lanes.set(projector.name, lane);
    this.rejoin(lane);
    return lane;
  }

  /** Lets go of a lane (its lock is gone or released); a batch in flight may still commit it. */
  leave(lane: Lane): void {
    if (this.lanes.get(lane.name) === lane) this.lanes.delete(lane.name);
    lane.end();
  }

  rejoin(lane: Lane): void {
    if (this.subscription && this.behind(lane)) this.subscription.abort();
    this.wake();
  }

  /** The lane misses events the current subscription has delivered already. */
  private behind(lane: Lane): boolean {
    return comparePositions(lane.position, this.readTo) < 0;
  }

  /**
   * Holds every lane between two batches, for a rebuild's swap: resolves once the batch in flight
   * (if any) has committed, so the lanes' positions stand still until the returned function runs.
   */
  async pause(): Promise<() => void> {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    this.gates.add(gate);
    await this.inFlight;
    return () => {
      this.gates.delete(gate);
      open();
    };
  }

  /** Stops after the batch in flight; the lanes stay (their leadership lets go of them). */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.wake();
    await this.loop;
  }

  /** Resolves once the loop has ended (after `stop`). */
  stopped(): Promise<void> {
    return this.loop;
  }

  private activeLanes(): Lane[] {
    return [...this.lanes.values()].filter((lane) => lane.active);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      const lanes = this.activeLanes();
      if (lanes.length === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      const from = lanes.reduce<string | null>(
        (low, lane) => (comparePositions(lane.position, low) < 0 ? lane.position : low),
        lanes[0]!.position,
      );
      const subscription = new AbortController();
      const stop = () => subscription.abort();
      this.stopping.signal.addEventListener('abort', stop, { once: true });
      this.subscription = subscription;
      this.readTo = from;
      try {
        const events = this.store.subscribe({
          fromPosition: from,
          streamPrefix: INCIDENT_STREAM_PREFIX,
          signal: subscription.signal,
        });
        for await (const batch of batches(events, this.batchSize)) {
          while (this.gates.size > 0) await Promise.all(this.gates);
          if (subscription.signal.aborted) break;
          const applying = this.apply(batch);
          this.inFlight = applying.catch(() => {});
          await applying;
          this.readTo = batch.at(-1)!.position;
          failures = 0;
          // A lane that joined while the batch was in flight missed it: start again from the lowest.
          if (subscription.signal.aborted || this.activeLanes().some((lane) => this.behind(lane))) break;
        }
      } catch (error) {
        // Back off while it keeps failing; start over once a batch got through.
        failures++;
        this.logger.warn({ err: error }, 'subscription dropped; resuming from the checkpoints');
        await sleep(subscriptionBackoff.delayMs(failures - 1), this.stopping.signal);
      } finally {
        subscription.abort();
        this.stopping.signal.removeEventListener('abort', stop);
        this.subscription = null;
      }
    }
  }

  /** Applies a batch to every active lane it passes; a lane whose events fail is isolated. */
  private async apply(batch: readonly RecordedEvent[]): Promise<void> {
    const events = batch.map((recorded): BatchEvent => {
      try {
        return { recorded, projected: toProjectedEvent(recorded) };
      } catch (error) {
        return { recorded, invalid: error };
      }
    });
    const shares: Share[] = [];
    // Only lanes that have every event up to where the batch starts; one further behind waits for the
    // resubscription its joining asked for.
    const eligible = this.activeLanes().filter((lane) => !this.behind(lane));
    for (const lane of eligible) {
      const start = events.findIndex((event) => comparePositions(event.recorded.position, lane.position) > 0);
      if (start !== -1) shares.push({ lane, events: start === 0 ? events : events.slice(start) });
    }
    const to = batch.at(-1)!.position;
    const failing: Share[] = [];
    const planned: Share[] = [];
    await Promise.all(
      shares.map(async (share) => {
        try {
          share.rows = await this.planShare(share);
          planned.push(share);
        } catch (error) {
          if (isDatabaseUnavailable(error)) throw error;
          failing.push(share);
        }
      }),
    );
    if (planned.length > 0) {
      try {
        await this.commit(planned, to);
      } catch (error) {
        if (isDatabaseUnavailable(error)) throw error;
        // One lane's rows spoil the statement: find which by committing each on its own.
        this.logger.warn({ err: error }, 'batch failed; committing each projection on its own');
        for (const share of planned) {
          try {
            await this.commit([share], to);
          } catch (own) {
            if (isDatabaseUnavailable(own)) throw own;
            failing.push(share);
          }
        }
      }
    }
    for (const share of failing) await this.isolate(share);
  }

  /** Validates a lane's events and plans its rows (reading what they change, outside any transaction). */
  private async planShare(share: Share): Promise<RawBuilder<unknown> | null> {
    const projected = share.events.map((event) => {
      if (event.invalid !== undefined) throw event.invalid;
      return event.projected!;
    });
    const { projector } = share.lane;
    const guard = sql`exists (select 1 from moved where moved.name = ${projector.name})`;
    return planRows(this.database, this.database.background, projector, projector.table, projected, guard);
  }

  /**
   * One statement: the checkpoints of `shares` move to `to` where they still stand where the batch
   * started, each lane's rows are written only if its checkpoint moved, and each move is NOTIFYed
   * (delivered on commit, to every process). A lane whose checkpoint had moved lost its lead.
   * The commit does not wait for its WAL flush: a crash can only lose whole batches, rows and
   * checkpoint together, and the daemon projects them again from the durable events.
   */
  private async commit(shares: readonly Share[], to: string): Promise<void> {
    const moves = shares.map(({ lane, events }) => ({
      name: lane.name,
      from: lane.position,
      events: events.length,
      state: lane.rebuilding ? ('rebuilding' as const) : ('running' as const),
    }));
    const statements = [sql`moved as (${advanceStatement(moves, to)})`];
    shares.forEach((share, index) => {
      if (share.rows) statements.push(sql`${sql.raw(`rows_${index}`)} as (${share.rows})`);
    });
    const statement = sql<{ name: string }>`
      with ${sql.join(statements)}
      select name, pg_notify(${PROGRESS_CHANNEL}, name || ' ' || ${to})::text as notified,
        set_config('synchronous_commit', 'off', true) as durability
      from moved`;
    const { rows } = await statement
      .execute(this.database.background)
      .catch((error: unknown) =>
        Promise.reject(shares.length === 1 ? rowError(shares[0]!.lane.projector, error) : error),
      );
    const moved = new Set(rows.map((row) => row.name));
    const committed: string[] = [];
    for (const { lane } of shares) {
      if (!moved.has(lane.name)) {
        lane.logger.warn('checkpoint moved under this process: another one leads the projection now');
        this.leave(lane);
        continue;
      }
      lane.position = to;
      lane.failed = false;
      lane.failing = null;
      committed.push(lane.name);
      announce(this.database, PROGRESS_CHANNEL, `${lane.name} ${to}`);
    }
    if (committed.length > 0) this.emit(shares, moves, to, committed);
  }

  private emit(
    shares: readonly Share[],
    moves: readonly { from: string | null }[],
    to: string,
    projections: readonly string[],
  ): void {
    if (this.listeners.size === 0 || comparePositions(to, this.emittedTo) <= 0) {
      if (comparePositions(to, this.emittedTo) > 0) this.emittedTo = to;
      return;
    }
    const widest = shares.reduce((wide, share) => (share.events.length > wide.events.length ? share : wide));
    // The widest share holds every event after the lowest checkpoint the batch started from.
    const from = moves.reduce<string | null>(
      (low, move) => (comparePositions(move.from, low) < 0 ? move.from : low),
      moves[0]!.from,
    );
    const after = comparePositions(from, this.emittedTo) > 0 ? from : this.emittedTo;
    const events = widest.events
      .map((event) => event.recorded)
      .filter((event) => comparePositions(event.position, after) > 0);
    this.emittedTo = to;
    const batch: CommittedBatch = { after, position: to, events, projections };
    for (const listener of this.listeners) {
      try {
        listener(batch);
      } catch (error) {
        this.logger.error({ err: error }, 'a committed-batch listener threw');
      }
    }
  }

  /** Commits a failing lane's events one by one up to the one that fails, which it then retries later. */
  private async isolate(share: Share): Promise<void> {
    const { lane } = share;
    for (const event of share.events) {
      if (!lane.active) return;
      try {
        const single: Share = { lane, events: [event] };
        single.rows = await this.planShare(single);
        await this.commit([single], event.recorded.position);
      } catch (error) {
        if (isDatabaseUnavailable(error)) throw error;
        await this.failed(lane, event.recorded, error);
        return;
      }
    }
  }

  /** Parks a lane at an event that failed: retried after the next wait, recorded once the waits run out. */
  private async failed(lane: Lane, event: RecordedEvent, error: unknown): Promise<void> {
    if (lane.failing?.position !== event.position) lane.failing = { position: event.position, tries: 0 };
    const tries = ++lane.failing.tries;
    const wait = this.retryDelaysMs[tries - 1];
    if (wait !== undefined) {
      lane.logger.warn(
        { err: error, position: event.position, attempt: tries },
        'event failed to project; retrying',
      );
      lane.park(wait);
      return;
    }
    lane.failing = null;
    lane.failed = true;
    lane.park(FAILED_RETRY_MS);
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    // Recorded first, so whoever reads the line finds the failure in projection_checkpoints.
    await recordFailure(this.database, lane.name, event.position, message).catch((cause: unknown) =>
      lane.logger.error({ err: cause }, 'could not record the failure'),
    );
    lane.logger.error(
      { err: error, position: event.position, eventId: event.eventId },
      'projection stopped at an event that keeps failing',
    );
  }
}

/**
 * Groups a subscription's events into batches of what it has ready (up to `max`), so a batch never
 * waits for events that have not been written yet.
 */
export async function* batches<T>(source: AsyncIterable<T>, max: number): AsyncGenerator<T[]> {
  const iterator = source[Symbol.asyncIterator]();
  // Each pending read gets a handler at once: it may fail while a batch is being committed.
  const read = () => {
    const next = iterator.next();
    next.catch(() => {});
    return next;
  };
  try {
    let next = read();
    for (;;) {
      const first = await next;
      if (first.done) return;
      const batch = [first.value];
      next = read();
      while (batch.length < max) {
        // Whatever the source has in hand settles before the next turn of the event loop.
        const ready = await Promise.race([
          next,
          new Promise<null>((resolve) => setImmediate(() => resolve(null))),
        ]);
        if (ready === null) break;
        if (ready.done) {
          yield batch;
          return;
        }
        batch.push(ready.value);
        next = read();
      }
      yield batch;
    }
  } finally {
    // Not awaited: a read may still be pending, and the caller aborts the source to end it.
    void iterator.return?.()?.catch(() => {});
  }
}
