import { sql, type Kysely, type SelectQueryBuilder } from 'kysely';
import type { Schema } from '../../db/schema.ts';
import { isDatabaseUnavailable, type Database } from '../../db/database.ts';
import { sleep } from '../../retry.ts';
import {
  EventStoreUnavailable,
  WrongExpectedVersion,
  formatPosition,
  parsePosition,
  type AppendResult,
  type EventStore,
  type EventToAppend,
  type ExpectedVersion,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeOptions,
} from '../port.ts';

const CHANNEL = 'its_events';
const SUBSCRIPTION_BATCH = 500;
/** Re-read this often while events wait behind a running transaction (no NOTIFY marks its end). */
const HORIZON_RECHECK_MS = 10;
/** A subscriber re-reads at least this often even without a NOTIFY (one can be lost in a crash). */
const IDLE_RECHECK_MS = 5_000;
/**
 * A fresh log's statistics say it is empty (migration 0004 analyzes it, so plans are right from the
 * first event), and each session keeps the plans `its_append` made then: sequential scans, which
 * stay cheap only while the table is. The log is analyzed again when it first holds this many
 * events; that makes every session plan anew, with the indexes, and autovacuum keeps it so after.
 */
const YOUNG_LOG_EVENTS = 1_000n;

interface EventRow {
  tx_id: string;
  global_seq: string;
  stream_name: string;
  version: string;
  event_id: string;
  type: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  created_at: string;
}

/** The group a stream belongs to: its name up to the first dot (`incident-{orgId}.`), so org feeds use an index. */
export function streamGroup(streamName: string): string {
  const dot = streamName.indexOf('.');
  return dot === -1 ? streamName : streamName.slice(0, dot + 1);
}

/** A LIKE pattern matching every name that starts with `prefix`. */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, '\\$&')}%`;
}

function toRecorded(row: EventRow): RecordedEvent {
  return {
    eventId: row.event_id,
    type: row.type,
    streamName: row.stream_name,
    version: Number(row.version),
    position: formatPosition(BigInt(row.tx_id), BigInt(row.global_seq)),
    createdAt: row.created_at,
    data: row.data,
    metadata: row.metadata,
  };
}

function expectedCode(expected: ExpectedVersion): number {
  if (expected === 'no_stream') return -1;
  if (expected === 'any') return -2;
  return expected;
}

export class PostgresEventStore implements EventStore {
  readonly kind = 'postgres';
  private notifyInFlight = false;
  private notifyAgain = false;
  private youngLogChecked = false;
  /** This process's subscribers: an append here wakes them at once, without the NOTIFY's round trip. */
  private readonly localSubscribers = new Set<() => void>();

  constructor(private readonly database: Database) {}

  private get db() {
    return this.database.db;
  }

  async append(
    streamName: string,
    events: EventToAppend[],
    expected: ExpectedVersion,
  ): Promise<AppendResult> {
    if (events.length === 0) throw new RangeError('append needs at least one event');
    const payload = JSON.stringify(
      events.map(({ eventId, type, data, metadata }) => ({ eventId, type, data, metadata })),
    );
    const row = await this.guard(async () => {
      const { rows } = await sql<{
        outcome: string;
        version: string | null;
        tx_id: string | null;
        global_seq: string | null;
      }>`
        select * from its_append(${streamName}, ${streamGroup(streamName)}, ${expectedCode(expected)}, ${payload}::jsonb)`.execute(
        this.db,
      );
      return rows[0]!;
    });
    if (row.outcome === 'wrong_version') {
      throw new WrongExpectedVersion(
        streamName,
        expected,
        row.version === null ? 'no_stream' : Number(row.version),
      );
    }
    if (row.outcome === 'duplicate_elsewhere') {
      throw new RangeError(`event ${events.at(-1)!.eventId} was already appended to another stream`);
    }
    for (const wake of this.localSubscribers) wake();
    this.notifySubscribers();
    const globalSeq = BigInt(row.global_seq!);
    this.analyzeYoungLog(globalSeq);
    return { version: Number(row.version), position: formatPosition(BigInt(row.tx_id!), globalSeq) };
  }

  // Once per process, on the first append at or past YOUNG_LOG_EVENTS; a log ten times that size is
  // not young, and its statistics are autovacuum's.
  private analyzeYoungLog(globalSeq: bigint): void {
    if (this.youngLogChecked || globalSeq < YOUNG_LOG_EVENTS) return;
    this.youngLogChecked = true;
    if (globalSeq >= 10n * YOUNG_LOG_EVENTS) return;
    sql`analyze its_events`.execute(this.db).catch(() => {
      // Without it the plans are slower, not wrong; autovacuum analyzes the table soon enough.
    });
  }

  // NOTIFY after commit, not inside the append: inside, it would serialize every commit on the
  // notify queue lock. One NOTIFY in flight at a time, one more queued behind it, covers any burst.
  private notifySubscribers(): void {
    if (this.notifyInFlight) {
      this.notifyAgain = true;
      return;
    }
    this.notifyInFlight = true;
    sql`select pg_notify(${CHANNEL}, '')`
      .execute(this.db)
      .catch(() => {
        // Subscribers re-read on their idle timer; a lost wake-up only delays them.
      })
      .finally(() => {
        this.notifyInFlight = false;
        if (this.notifyAgain) {
          this.notifyAgain = false;
          this.notifySubscribers();
        }
      });
  }

  async readStream(streamName: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const backwards = options.direction === 'backwards';
    const rows = await this.guard(() => {
      let query = this.selectEvents().where('stream_name', '=', streamName);
      if (options.fromVersion !== undefined) {
        query = query.where('version', backwards ? '<=' : '>=', String(options.fromVersion));
      }
      query = query.orderBy('version', backwards ? 'desc' : 'asc');
      if (options.limit !== undefined) query = query.limit(options.limit);
      return query.execute();
    });
    return rows.map(toRecorded);
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    const rows = await this.guard(() =>
      this.readCommitted(this.db, options.fromPosition ?? null, options.streamPrefix, options.limit),
    );
    return rows.map(toRecorded);
  }

  async countEvents(options: {
    fromPosition?: string | null;
    streamPrefix?: string;
    limit?: number;
  }): Promise<number> {
    const { rows } = await this.guard(() =>
      sql<{
        n: string;
      }>`select count(*) as n from (${this.committedAfter(this.db.selectFrom('its_events').select(sql`1`.as('one')), options.fromPosition ?? null, options.streamPrefix).limit(options.limit ?? Number.MAX_SAFE_INTEGER)}) as counted`.execute(
        this.db,
      ),
    );
    return Number(rows[0]!.n);
  }

  /** Events after `after`, only from below the horizon: older than every append still running (migration 0004). */
  private readCommitted(
    db: Kysely<Schema>,
    after: string | null,
    streamPrefix: string | undefined,
    limit: number,
  ) {
    // Order by the column, not the select list's text alias of it: as text, '1000' < '902'.
    return this.committedAfter(this.selectEvents(db), after, streamPrefix)
      .orderBy(sql`its_events.tx_id`)
      .orderBy(sql`its_events.global_seq`)
      .limit(limit)
      .execute();
  }

  private committedAfter<Q extends SelectQueryBuilder<Schema, 'its_events', object>>(
    select: Q,
    after: string | null,
    streamPrefix: string | undefined,
  ): Q {
    let query = select.where(sql<boolean>`tx_id < (select its_horizon())`) as Q;
    if (after !== null) {
      const [tx, seq] = parsePosition(after);
      query = query.where(
        sql<boolean>`(tx_id, global_seq) > (${tx.toString()}::xid8, ${seq.toString()}::bigint)`,
      ) as Q;
    }
    if (streamPrefix !== undefined) {
      query = (
        streamGroup(streamPrefix) === streamPrefix && streamPrefix.endsWith('.')
          ? query.where('stream_group', '=', streamPrefix)
          : query.where('stream_name', 'like', likePrefix(streamPrefix))
      ) as Q;
    }
    return query;
  }

  private selectEvents(db: Kysely<Schema> = this.db) {
    return db.selectFrom('its_events').select([
      sql<string>`tx_id::text`.as('tx_id'),
      'global_seq',
      'stream_name',
      'version',
      sql<string>`event_id::text`.as('event_id'),
      'type',
      sql<Record<string, unknown>>`data`.as('data'),
      sql<Record<string, unknown>>`metadata`.as('metadata'),
      // ISO text straight from the server: no Date to parse and format again per event.
      sql<string>`to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.as('created_at'),
    ]);
  }

  async *subscribe(options: SubscribeOptions): AsyncIterable<RecordedEvent> {
    const { signal, streamPrefix } = options;
    let position = options.fromPosition ?? null;
    let wake: (() => void) | null = null;
    let woken = false;
    const onWake = () => {
      woken = true;
      wake?.();
    };
    signal?.addEventListener('abort', onWake);
    let unlisten: (() => Promise<void>) | null = null;
    this.localSubscribers.add(onWake);
    try {
      unlisten = await this.database.listen(CHANNEL, onWake);
      while (!signal?.aborted) {
        woken = false;
        let rows: EventRow[];
        try {
          // On the background pool: a subscriber never waits behind the requests it serves.
          rows = await this.readCommitted(
            this.database.background,
            position,
            streamPrefix,
            SUBSCRIPTION_BATCH,
          );
        } catch (error) {
          if (!isDatabaseUnavailable(error)) throw error;
          await sleep(500, signal);
          continue;
        }
        for (const row of rows) {
          const event = toRecorded(row);
          position = event.position;
          yield event;
          if (signal?.aborted) return;
        }
        if (rows.length === SUBSCRIPTION_BATCH || woken) continue;
        const waitMs = (await this.hasEventsBehindHorizon(position, streamPrefix))
          ? HORIZON_RECHECK_MS
          : IDLE_RECHECK_MS;
        if (woken) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, waitMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
    } finally {
      this.localSubscribers.delete(onWake);
      signal?.removeEventListener('abort', onWake);
      await unlisten?.();
    }
  }

  /** True when committed or running appends exist past `position` that the horizon still hides. */
  private async hasEventsBehindHorizon(
    position: string | null,
    streamPrefix: string | undefined,
  ): Promise<boolean> {
    try {
      const [tx, seq] = position === null ? [0n, 0n] : parsePosition(position);
      // In log order with a limit, not `exists`: the planner then walks the primary key from
      // `position` instead of scanning the table for any row past it.
      const { rows } = await sql<{ waiting: number }>`
        select 1 as waiting from its_events
        where (tx_id, global_seq) > (${tx.toString()}::xid8, ${seq.toString()}::bigint)
          and stream_name like ${likePrefix(streamPrefix ?? '')}
        order by tx_id, global_seq limit 1`.execute(this.database.background);
      return rows.length > 0;
    } catch (error) {
      if (isDatabaseUnavailable(error)) return true;
      throw error;
    }
  }

  async headPosition(streamPrefix?: string): Promise<string | null> {
    const rows = await this.guard(() => {
      let query = this.db
        .selectFrom('its_events')
        .select([sql<string>`tx_id::text`.as('tx_id'), 'global_seq'])
        .where(sql<boolean>`tx_id < (select its_horizon())`);
      if (streamPrefix !== undefined) {
        query = query.where('stream_name', 'like', likePrefix(streamPrefix));
      }
      return query
        .orderBy(sql`its_events.tx_id desc`)
        .orderBy(sql`its_events.global_seq desc`)
        .limit(1)
        .execute();
    });
    const row = rows[0];
    return row ? formatPosition(BigInt(row.tx_id), BigInt(row.global_seq)) : null;
  }

  async ping(): Promise<void> {
    await this.guard(() => sql`select 1`.execute(this.db));
  }

  /** The database belongs to whoever opened it; closing the store does not close it. */
  async close(): Promise<void> {}

  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (isDatabaseUnavailable(error))
        throw new EventStoreUnavailable('PostgreSQL event store unreachable', { cause: error });
      throw error;
    }
  }
}
