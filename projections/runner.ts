import { sql } from 'kysely';
import { pino, type Logger } from 'pino';
import type { Database, SessionLock } from '../src/db/database.ts';
import { comparePositions, type EventStore, type RecordedEvent } from '../src/eventstore/port.ts';
import { PROGRESS_CHANNEL, REBUILD_CHANNEL, announce, listenForNotices } from './notices.ts';
import { ProjectionProgress } from './progress.ts';
import { INCIDENT_STREAM_PREFIX, toProjectedEvent, type Projector } from './projector.ts';
import {
  LeadershipLost,
  Stopped,
  rebuildWhileLive,
  type LiveProjection,
  type RebuildProgress,
} from './rebuild.ts';
import { applyEvents, ensureCheckpoint } from './rows.ts';

export interface RunnerOptions {
  database: Database;
  store: EventStore;
  logger?: Logger;
  /** Most events per transaction. */
  batchSize?: number;
  /** Waits between the tries of a failing event; one more try than there are waits. */
  retryDelaysMs?: readonly number[];
  /** How often a standby tries to take the lead. */
  standbyRetryMs?: number;
}

interface RunnerContext {
  database: Database;
  store: EventStore;
  logger: Logger;
  batchSize: number;
  retryDelaysMs: readonly number[];
  standbyRetryMs: number;
}

export interface ProjectionWorkers {
  /** Stops every worker at a checkpoint (a batch being committed finishes first). */
  stop(): Promise<void>;
}

/** Another process leads this projection; ask it with `requestRebuild`. */
export class ProjectionBusy extends Error {
  override readonly name = 'ProjectionBusy';
  constructor(readonly projection: string) {
    super(`projection ${projection} is being run by another process`);
  }
}

/** A failed projection tries its event again this often, besides after a rebuild or a restart. */
const FAILED_RETRY_MS = 60_000;

export function lockName(projection: string): string {
  return `projection:${projection}`;
}

function contextOf(options: RunnerOptions): RunnerContext {
  return {
    database: options.database,
    store: options.store,
    logger: options.logger ?? pino({ enabled: false }),
    batchSize: options.batchSize ?? 500,
    retryDelaysMs: options.retryDelaysMs ?? [200, 800, 3200, 12_800],
    standbyRetryMs: options.standbyRetryMs ?? 1000,
  };
}

// What this process does for each projection, per database: so status and rebuilds can find it.
const localRoles = new WeakMap<Database, Map<string, ProjectionLeader | 'standby'>>();

function rolesOf(database: Database): Map<string, ProjectionLeader | 'standby'> {
  let roles = localRoles.get(database);
  if (!roles) localRoles.set(database, (roles = new Map()));
  return roles;
}

/** This process's part in a projection: leading it, waiting to, or none. */
export function localRole(database: Database, projection: string): 'leader' | 'standby' | null {
  const role = localRoles.get(database)?.get(projection);
  return role === undefined ? null : role === 'standby' ? 'standby' : 'leader';
}

/** One worker per projector: each leads its projection when it can take the lock, else stands by. */
export function startProjectionRunners(
  options: RunnerOptions & { projectors: readonly Projector[] },
): ProjectionWorkers {
  const context = contextOf(options);
  const controller = new AbortController();
  const workers = options.projectors.map((projector) => runWorker(context, projector, controller.signal));
  return {
    async stop() {
      controller.abort();
      await Promise.all(workers);
    },
  };
}

async function runWorker(context: RunnerContext, projector: Projector, signal: AbortSignal): Promise<void> {
  const { database, logger } = context;
  const roles = rolesOf(database);
  while (!signal.aborted) {
    let lock: SessionLock | null = null;
    try {
      lock = await database.tryLock(lockName(projector.name));
    } catch (error) {
      logger.warn(
        { projection: projector.name, err: error },
        'cannot reach the database to take the projection lock',
      );
    }
    if (!lock) {
      roles.set(projector.name, 'standby');
      await sleep(context.standbyRetryMs, signal);
      continue;
    }
    try {
      await lead(context, projector, lock, signal);
    } catch (error) {
      if (!(error instanceof Stopped))
        logger.error({ projection: projector.name, err: error }, 'projection worker stopped leading');
    } finally {
      await lock.release().catch(() => {});
    }
    // After losing the lead, give whoever took it a head start before trying again.
    if (!signal.aborted) await sleep(context.standbyRetryMs, signal);
  }
  roles.delete(projector.name);
}

/** Leads a projection while this process holds its lock: live projection, and rebuilds on request. */
async function lead(
  context: RunnerContext,
  projector: Projector,
  lock: SessionLock,
  stopping: AbortSignal,
): Promise<void> {
  const leading = new AbortController();
  const stop = () => leading.abort();
  stopping.addEventListener('abort', stop, { once: true });
  let lockLost = false;
  void lock.lost.then(() => {
    lockLost = true;
    stop();
  });
  const leader = new ProjectionLeader(context, projector, leading.signal);
  const roles = rolesOf(context.database);
  roles.set(projector.name, leader);
  context.logger.info({ projection: projector.name }, 'leading projection');
  try {
    await leader.run();
  } finally {
    stopping.removeEventListener('abort', stop);
    roles.delete(projector.name);
    // A clean stop says so; a lost lock leaves the row to whoever leads now.
    if (stopping.aborted && !lockLost) await leader.recordStopped().catch(() => {});
  }
}

/**
 * Rebuilds projections now, together in one pass over the log: each through this process's leader
 * of it if there is one, else by leading it for the while (live included, so the old table stays
 * current). Resolves with each projection's outcome, in the order given: ProjectionBusy for one
 * that another process leads.
 */
export async function rebuildWithLeaders(
  options: RunnerOptions & { projectors: readonly Projector[]; onProgress?: RebuildProgress },
): Promise<PromiseSettledResult<void>[]> {
  const context = contextOf(options);
  const { database, logger } = context;
  const roles = rolesOf(database);
  const stopping = new AbortController();
  const borrowed: { leader: ProjectionLeader; lock: SessionLock; leading: Promise<unknown> }[] = [];
  try {
    const leaders = await Promise.allSettled(
      options.projectors.map(async (projector) => {
        const local = roles.get(projector.name);
        if (local instanceof ProjectionLeader) return local;
        const lock = await database.tryLock(lockName(projector.name));
        if (!lock) throw new ProjectionBusy(projector.name);
        // Handled at once: the temporary leader may fail while the rebuild is still being awaited.
        const leading = lead(context, projector, lock, stopping.signal).catch((error: unknown) =>
          logger.error({ projection: projector.name, err: error }, 'temporary leader failed'),
        );
        const leader = roles.get(projector.name);
        if (!(leader instanceof ProjectionLeader)) throw new Error(`could not lead ${projector.name}`);
        borrowed.push({ leader, lock, leading });
        await leader.ready();
        return leader;
      }),
    );
    // Asked in one turn, so they share one pass.
    const outcomes = await Promise.allSettled(
      leaders.map((found) =>
        found.status === 'fulfilled' ? found.value.rebuild(options.onProgress) : Promise.reject(found.reason),
      ),
    );
    // Nobody else leads the borrowed ones: catch up with the log before letting go, so "rebuilt" means current.
    const rebuilt = (leader: ProjectionLeader) =>
      outcomes[options.projectors.indexOf(leader.projector)]?.status === 'fulfilled';
    await Promise.all(borrowed.filter(({ leader }) => rebuilt(leader)).map(({ leader }) => leader.catchUp()));
    return outcomes;
  } finally {
    stopping.abort();
    await Promise.all(borrowed.map(({ leading }) => leading));
    await Promise.all(borrowed.map(({ lock }) => lock.release().catch(() => {})));
  }
}

/** How long a rebuild waits for others asked about the same time, so one pass serves them all. */
const REBUILD_GATHER_MS = 50;

// The rebuild of each database that is still taking projections in.
const gathering = new WeakMap<
  Database,
  { leaders: ProjectionLeader[]; outcomes: Promise<PromiseSettledResult<void>[]> }
>();

/** Runs a leader's rebuild in one pass with those of every leader in this process asked about the same time. */
async function rebuildTogether(leader: ProjectionLeader): Promise<void> {
  const { database } = leader;
  let pass = gathering.get(database);
  if (!pass) {
    const leaders: ProjectionLeader[] = [];
    const outcomes = new Promise<void>((resolve) => setTimeout(resolve, REBUILD_GATHER_MS)).then(() => {
      gathering.delete(database);
      return rebuildWhileLive(leaders);
    });
    pass = { leaders, outcomes };
    gathering.set(database, pass);
  }
  const index = pass.leaders.push(leader) - 1;
  const outcome = (await pass.outcomes)[index]!;
  if (outcome.status === 'rejected') throw outcome.reason;
}

class ProjectionLeader implements LiveProjection {
  readonly database: Database;
  readonly store: EventStore;
  readonly logger: Logger;
  position: string | null = null;
  private failed = false;
  private readonly loaded: Promise<void>;
  private markLoaded!: (error?: unknown) => void;
  private gate: Promise<void> | null = null;
  private inFlight: Promise<unknown> = Promise.resolve();
  private rebuilding: Promise<void> | null = null;
  private readonly progressListeners = new Set<RebuildProgress>();
  private retryFailed: () => void = () => {};

  constructor(
    private readonly context: RunnerContext,
    readonly projector: Projector,
    readonly signal: AbortSignal,
  ) {
    this.database = context.database;
    this.store = context.store;
    this.logger = context.logger.child({ projection: projector.name });
    this.loaded = new Promise<void>((resolve, reject) => {
      this.markLoaded = (error) => (error === undefined ? resolve() : reject(error));
    });
    this.loaded.catch(() => {});
  }

  private get name(): string {
    return this.projector.name;
  }

  liveState(): 'running' | 'failed' {
    return this.failed ? 'failed' : 'running';
  }

  /** Resolves once the leader has loaded its checkpoint (rejects if it could not). */
  ready(): Promise<void> {
    return this.loaded;
  }

  rebuildProgress(done: number, total: number): void {
    for (const listener of this.progressListeners) listener(done, total);
  }

  /** Waits until the live side has projected the head of the log, unless it stops or fails first. */
  async catchUp(): Promise<void> {
    const head = await this.store.headPosition(INCIDENT_STREAM_PREFIX);
    if (head === null) return;
    const progress = new ProjectionProgress(this.database, [this.name]);
    try {
      // In slices, so a live side that fails or loses the lock does not hold the caller forever.
      while (!(await progress.waitFor(head, 1000))) {
        if (this.signal.aborted || this.failed || rolesOf(this.database).get(this.name) !== this) return;
      }
    } finally {
      await progress.stop();
    }
  }

  /** Projects live until the signal aborts; throws LeadershipLost when another worker took over. */
  async run(): Promise<void> {
    const db = this.database.db;
    let unlisten: (() => Promise<void>) | null = null;
    try {
      await ensureCheckpoint(db, this.name);
      const checkpoint = await db
        .selectFrom('projection_checkpoints')
        .select('position')
        .where('name', '=', this.name)
        .executeTakeFirstOrThrow();
      this.position = checkpoint.position;
      // A new leader tries again whatever stopped the last one.
      await db
        .updateTable('projection_checkpoints')
        .set({ state: 'running', updated_at: sql<Date>`now()` })
        .where('name', '=', this.name)
        .execute();
      unlisten = await listenForNotices(this.database, REBUILD_CHANNEL, (payload) => {
        if (payload === null || payload === this.name) this.serveRebuildRequest();
      });
      this.markLoaded();
    } catch (error) {
      this.markLoaded(error);
      await unlisten?.();
      throw error;
    }
    this.serveRebuildRequest();
    try {
      let failures = 0;
      while (!this.signal.aborted) {
        const before = this.position;
        try {
          await this.follow();
        } catch (error) {
          if (error instanceof LeadershipLost || error instanceof Stopped) throw error;
          // Back off while it keeps failing in the same place; start over once it made progress.
          failures = comparePositions(before, this.position) === 0 ? failures + 1 : 1;
          this.logger.warn({ err: error }, 'subscription dropped; resuming from the checkpoint');
          await sleep(Math.min(5000, 250 * 2 ** (failures - 1)), this.signal);
        }
      }
    } catch (error) {
      if (!(error instanceof Stopped)) throw error;
    } finally {
      await unlisten();
      await this.rebuilding?.catch(() => {});
    }
  }

  /** Hands the subscription's events to the projector, batch by batch, until the signal aborts. */
  private async follow(): Promise<void> {
    const subscription = new AbortController();
    const unlink = forward(this.signal, subscription);
    try {
      const events = this.store.subscribe({
        fromPosition: this.position,
        streamPrefix: INCIDENT_STREAM_PREFIX,
        signal: subscription.signal,
      });
      for await (const batch of batches(events, this.context.batchSize)) {
        let pending = batch;
        while (pending.length > 0) {
          while (this.gate) await this.gate;
          if (this.signal.aborted) return;
          // Set synchronously after the gate check, so a pause either sees this batch or holds it.
          const projecting = this.projectBatch(pending);
          this.inFlight = projecting.catch(() => {});
          const failedAt = await projecting;
          if (failedAt < 0) break;
          pending = pending.slice(failedAt);
          await this.waitToRetry();
        }
      }
    } finally {
      subscription.abort();
      unlink();
    }
  }

  /** Commits a batch; returns -1, or the index of an event that kept failing (recorded as failed). */
  private async projectBatch(events: readonly RecordedEvent[]): Promise<number> {
    if (events.length > 1) {
      try {
        await this.commit(events);
        return -1;
      } catch (error) {
        if (error instanceof LeadershipLost) throw error;
        // One event spoils the batch: find it by committing them one by one.
        this.logger.warn({ err: error }, 'batch failed; projecting its events one by one');
      }
    }
    for (const [index, event] of events.entries()) {
      try {
        await this.commitWithRetries(event);
      } catch (error) {
        if (error instanceof LeadershipLost || error instanceof Stopped) throw error;
        await this.recordFailure(event, error);
        return index;
      }
    }
    return -1;
  }

  private async commitWithRetries(event: RecordedEvent): Promise<void> {
    const delays = this.context.retryDelaysMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.commit([event]);
        return;
      } catch (error) {
        if (error instanceof LeadershipLost || attempt >= delays.length) throw error;
        this.logger.warn(
          { err: error, position: event.position, attempt: attempt + 1 },
          'event failed to project; retrying',
        );
        await sleep(delays[attempt]!, this.signal);
        if (this.signal.aborted) throw new Stopped();
      }
    }
  }

  /** Rows and checkpoint in one transaction, which first checks that no other worker moved the checkpoint. */
  private async commit(events: readonly RecordedEvent[]): Promise<void> {
    const projected = events.map(toProjectedEvent);
    const to = events.at(-1)!.position;
    await this.database.db.transaction().execute(async (trx) => {
      const checkpoint = await trx
        .selectFrom('projection_checkpoints')
        .select('position')
        .where('name', '=', this.name)
        .forUpdate()
        .executeTakeFirst();
      if (!checkpoint || comparePositions(checkpoint.position, this.position) !== 0) {
        throw new LeadershipLost(
          `checkpoint of ${this.name} is at ${checkpoint?.position ?? 'nothing'}, not ${this.position ?? 'the start'}`,
        );
      }
      await applyEvents(this.database, trx, this.projector, this.projector.table, projected);
      await trx
        .updateTable('projection_checkpoints')
        .set({
          position: to,
          events_processed: sql<string>`events_processed + ${events.length}`,
          state: this.rebuilding ? 'rebuilding' : 'running',
          error_position: null,
          updated_at: sql<Date>`now()`,
        })
        .where('name', '=', this.name)
        .execute();
      // Delivered on commit only, to every process (API replicas wait on it).
      await sql`select pg_notify(${PROGRESS_CHANNEL}, ${`${this.name} ${to}`})`.execute(trx);
    });
    this.position = to;
    this.failed = false;
    announce(this.database, PROGRESS_CHANNEL, `${this.name} ${to}`);
  }

  private async recordFailure(event: RecordedEvent, error: unknown): Promise<void> {
    this.failed = true;
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.logger.error(
      { err: error, position: event.position, eventId: event.eventId },
      'projection stopped at an event that keeps failing',
    );
    await this.database.db
      .updateTable('projection_checkpoints')
      .set({
        state: 'failed',
        last_error: message,
        error_position: event.position,
        updated_at: sql<Date>`now()`,
      })
      .where('name', '=', this.name)
      .execute();
  }

  /** A failed projection stays put until a rebuild, a slow retry timer or a stop. */
  private waitToRetry(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.signal.removeEventListener('abort', done);
        this.retryFailed = () => {};
        resolve();
      };
      const timer = setTimeout(done, FAILED_RETRY_MS);
      this.signal.addEventListener('abort', done, { once: true });
      this.retryFailed = done;
    });
  }

  async pause(): Promise<() => void> {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    this.gate = gate;
    await this.inFlight;
    return () => {
      this.gate = null;
      open();
    };
  }

  /** Runs a rebuild beside the live projection; joins the one already running if any. */
  async rebuild(onProgress?: RebuildProgress): Promise<void> {
    if (onProgress) this.progressListeners.add(onProgress);
    try {
      this.rebuilding ??= this.loaded
        .then(() => rebuildTogether(this))
        .finally(() => {
          this.rebuilding = null;
          this.retryFailed();
        });
      await this.rebuilding;
    } finally {
      if (onProgress) this.progressListeners.delete(onProgress);
    }
  }

  private serveRebuildRequest(): void {
    if (this.rebuilding || this.signal.aborted) return;
    this.database.db
      .selectFrom('projection_checkpoints')
      .select('rebuild_requested_at')
      .where('name', '=', this.name)
      .executeTakeFirst()
      .then((row) => (row?.rebuild_requested_at ? this.rebuild() : undefined))
      .catch((error: unknown) => {
        if (!(error instanceof Stopped))
          this.logger.error({ err: error }, 'requested rebuild did not complete');
      });
  }

  /** On a clean stop, the row says nobody runs the projection (a failure stays recorded). */
  async recordStopped(): Promise<void> {
    await this.database.db
      .updateTable('projection_checkpoints')
      .set({ state: 'idle', updated_at: sql<Date>`now()` })
      .where('name', '=', this.name)
      .where('state', '<>', 'failed')
      .execute();
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

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Aborts `target` when `source` aborts; returns the unlink. */
function forward(source: AbortSignal, target: AbortController): () => void {
  const abort = () => target.abort();
  if (source.aborted) abort();
  source.addEventListener('abort', abort, { once: true });
  return () => source.removeEventListener('abort', abort);
}
