import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Schema } from './schema.ts';
import { PGliteDialect } from './pglite-dialect.ts';

/** A lock held for as long as this process leads (e.g. runs one projection). */
export interface SessionLock {
  /** Settles when the lock is lost: its session ended, so another process may now hold it. */
  readonly lost: Promise<void>;
  release(): Promise<void>;
}

/**
 * The PostgreSQL database holding the read models (and, with the PostgreSQL event store, the
 * events): a server reached through `pg`, or embedded PGlite.
 */
export interface Database {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Kysely<Schema>;
  /**
   * For the projection daemon and event subscriptions: on a server, a pool of two connections of its
   * own, so they never queue behind requests for the main pool; on PGlite, `db` itself.
   */
  readonly background: Kysely<Schema>;
  /** Calls `onNotify` for every NOTIFY on `channel`, and with null after a reconnect (notifications may have been missed). */
  listen(channel: string, onNotify: (payload: string | null) => void): Promise<() => Promise<void>>;
  /** Takes the named session-level advisory lock if it is free; null if another session holds it. */
  tryLock(name: string): Promise<SessionLock | null>;
  close(): Promise<void>;
}

export interface PostgresOptions {
  poolSize?: number;
  /** Fail a connection attempt after this long instead of hanging (ms). */
  connectTimeoutMs?: number;
  /** Cancel any statement running longer than this (ms). */
  statementTimeoutMs?: number;
}

/** Connections of `background`: the daemon's commit and the subscription's next read, at once. */
export const BACKGROUND_POOL_SIZE = 2;

// int8 (counts, sequences) arrive as strings from pg; numeric stays a string (it can exceed 2^53).
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => value);

export function openPostgres(connectionString: string, options: PostgresOptions = {}): Database {
  const connectTimeoutMs = options.connectTimeoutMs ?? 3000;
  const pool = new pg.Pool({
    connectionString,
    max: options.poolSize ?? 20,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs ?? 30_000,
    idleTimeoutMillis: 30_000,
  });
  // A dropped idle connection is replaced by the pool; without a handler it would crash the process.
  pool.on('error', () => {});
  // A connection dropped while checked out both fails its query and emits 'error' on the client,
  // which the pool only listens to while the client is idle: without this, a restart of the server
  // during a query is an uncaught exception. The failed query still rejects to its caller.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  const backgroundPool = new pg.Pool({
    connectionString,
    max: BACKGROUND_POOL_SIZE,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs ?? 30_000,
    idleTimeoutMillis: 30_000,
  });
  backgroundPool.on('error', () => {});
  backgroundPool.on('connect', (client) => client.on('error', () => {}));
  const background = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: backgroundPool }) });
  const newSession = async (): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString, connectionTimeoutMillis: connectTimeoutMs });
    client.on('error', () => {});
    await client.connect();
    return client;
  };
  const listener = new SharedListener(newSession);
  const locks = new LockSession(newSession);

  return {
    kind: 'postgres',
    db,
    background,
    listen: (channel, onNotify) => listener.listen(channel, onNotify),
    tryLock: (name) => locks.tryLock(name),
    async close() {
      await Promise.all([listener.close(), locks.close()]);
      await Promise.all([db.destroy(), background.destroy()]);
    },
  };
}

/**
 * The one session of a process that LISTENs, on every channel anyone listens to; it comes back by
 * itself after the server restarts, and then tells every listener (with null) that notifications
 * may have been missed.
 */
class SharedListener {
  private client: Promise<pg.Client> | null = null;
  private readonly queries = new QueryQueue();
  private readonly handlers = new Map<string, Set<(payload: string | null) => void>>();
  /** The channels each session has LISTENed on (see `sync`). */
  private readonly listening = new WeakMap<pg.Client, Set<string>>();
  private retry: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly connect: () => Promise<pg.Client>) {}

  async listen(channel: string, onNotify: (payload: string | null) => void): Promise<() => Promise<void>> {
    const client = await this.session();
    let handlers = this.handlers.get(channel);
    if (!handlers) this.handlers.set(channel, (handlers = new Set()));
    handlers.add(onNotify);
    try {
      await this.sync(client, channel);
    } catch (error) {
      this.remove(channel, onNotify);
      throw error;
    }
    return async () => {
      if (!this.remove(channel, onNotify)) return;
      const session = await this.client?.catch(() => null);
      if (session) await this.sync(session, channel).catch(() => {});
    };
  }

  /** Drops a handler; true when it was the channel's last. */
  private remove(channel: string, onNotify: (payload: string | null) => void): boolean {
    const handlers = this.handlers.get(channel);
    if (!handlers?.delete(onNotify) || handlers.size > 0) return false;
    this.handlers.delete(channel);
    return true;
  }

  /**
   * LISTENs or UNLISTENs so the session matches whether anyone listens on `channel` when its turn
   * in the queue comes, not when it was asked: a listener leaving while the next one arrives (a
   * resubscription) must not have its UNLISTEN land after the newcomer's LISTEN.
   */
  private sync(client: pg.Client, channel: string): Promise<void> {
    return this.queries.enqueue(async () => {
      let listening = this.listening.get(client);
      if (!listening) this.listening.set(client, (listening = new Set()));
      const wanted = this.handlers.has(channel);
      if (wanted === listening.has(channel)) return;
      await client.query(`${wanted ? 'listen' : 'unlisten'} ${pg.escapeIdentifier(channel)}`);
      if (wanted) listening.add(channel);
      else listening.delete(channel);
    });
  }

  private session(): Promise<pg.Client> {
    if (this.closed) return Promise.reject(new Error('Connection terminated: the database is closed'));
    this.client ??= this.open().catch((error: unknown) => {
      this.client = null;
      throw error;
    });
    return this.client;
  }

  private async open(): Promise<pg.Client> {
    const client = await this.connect();
    client.on('notification', (message) => {
      for (const handler of this.handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    const reopen = () => this.scheduleReopen(client);
    client.on('error', reopen);
    client.on('end', reopen);
    for (const channel of this.handlers.keys()) await this.sync(client, channel);
    return client;
  }

  private scheduleReopen(failed: pg.Client, delayMs = 200): void {
    if (this.closed || this.retry) return;
    void this.client?.then(
      (current) => {
        if (current !== failed || this.retry) return;
        this.client = null;
        this.retry = setTimeout(() => {
          this.retry = null;
          this.session()
            .then(() => {
              for (const handlers of this.handlers.values()) for (const handler of handlers) handler(null);
            })
            .catch(() => {
              this.client = Promise.resolve(failed);
              this.scheduleReopen(failed, Math.min(delayMs * 2, 5000));
            });
        }, delayMs);
        this.retry.unref();
      },
      () => {},
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const client = await this.client?.catch(() => null);
    this.client = null;
    await client?.end().catch(() => {});
  }
}

/**
 * The one session of a process that holds its session-level advisory locks (one per projection it
 * leads). A lock this process holds already is not taken twice (PostgreSQL's are re-entrant within
 * a session); when the session ends, every lock on it is lost.
 */
class LockSession {
  private client: Promise<pg.Client> | null = null;
  private readonly queries = new QueryQueue();
  private readonly held = new Map<string, () => void>();
  private closed = false;

  constructor(private readonly connect: () => Promise<pg.Client>) {}

  private session(): Promise<pg.Client> {
    if (this.closed) return Promise.reject(new Error('Connection terminated: the database is closed'));
    this.client ??= this.connect().then(
      (client) => {
        const lost = () => {
          if (this.client === session) this.client = null;
          for (const markLost of [...this.held.values()]) markLost();
          this.held.clear();
        };
        client.on('end', lost);
        client.on('error', lost);
        return client;
      },
      (error: unknown) => {
        this.client = null;
        throw error;
      },
    );
    const session = this.client;
    return session;
  }

  async tryLock(name: string): Promise<SessionLock | null> {
    if (this.held.has(name)) return null;
    const client = await this.session();
    // Claimed before the round trip, so two callers in this process never both take it.
    if (this.held.has(name)) return null;
    let markLost!: () => void;
    const lost = new Promise<void>((resolve) => (markLost = resolve));
    this.held.set(name, markLost);
    let locked = false;
    try {
      const { rows } = await this.queries.run<{ locked: boolean }>(
        client,
        'select pg_try_advisory_lock(hashtextextended($1, 0)) as locked',
        [name],
      );
      locked = rows[0]?.locked === true;
    } finally {
      if (!locked && this.held.get(name) === markLost) this.held.delete(name);
    }
    if (!locked) return null;
    return {
      lost,
      release: async () => {
        if (this.held.get(name) !== markLost) return;
        this.held.delete(name);
        await this.queries
          .run(client, 'select pg_advisory_unlock(hashtextextended($1, 0))', [name])
          .catch(() => {});
        markLost();
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = await this.client?.catch(() => null);
    this.client = null;
    await client?.end().catch(() => {});
  }
}

/** One query at a time on a shared session (pg refuses to queue them itself from version 9 on). */
class QueryQueue {
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs `task` once every task queued before it has settled. */
  enqueue<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => {});
    return result;
  }

  run<R extends pg.QueryResultRow = pg.QueryResultRow>(
    client: pg.Client,
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return this.enqueue(() => client.query<R>(text, values));
  }
}

/** Embedded PostgreSQL: in memory when `dataDir` is undefined, else persisted there. */
export async function openPGlite(dataDir?: string): Promise<Database> {
  const pglite = await PGlite.create(dataDir === undefined ? {} : { dataDir });
  const db = new Kysely<Schema>({ dialect: new PGliteDialect(pglite) });
  const held = new Set<string>();
  return {
    kind: 'pglite',
    db,
    background: db,
    async listen(channel, onNotify) {
      const unlisten = await pglite.listen(channel, (payload) => onNotify(payload));
      return async () => {
        await unlisten();
      };
    },
    // One process owns an embedded database, so the lock only has to be unique within it.
    async tryLock(name) {
      if (held.has(name)) return null;
      held.add(name);
      let release!: () => void;
      const lost = new Promise<void>((resolve) => (release = resolve));
      return {
        lost,
        release: async () => {
          held.delete(name);
          release();
        },
      };
    },
    async close() {
      await db.destroy();
      await pglite.close();
    },
  };
}

/** Answers when the database does; throws otherwise. */
export async function pingDatabase(database: Database): Promise<void> {
  await sql`select 1`.execute(database.db);
}

/** PostgreSQL (pg) failures that mean the server is gone or full, not that the query was wrong: answered 503. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (
    let current: unknown = error, depth = 0;
    current instanceof Error && depth < 5;
    current = current.cause, depth++
  ) {
    const code = (current as { code?: unknown }).code;
    if (
      typeof code === 'string' &&
      (/^08/.test(code) ||
        /^57P0[123]$/.test(code) ||
        // Insufficient resources: too many connections (53300), out of memory, disk full, limits.
        /^53[0-4]00$/.test(code) ||
        /^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN)$/.test(code) ||
        code === 'ENOTFOUND')
    ) {
      return true;
    }
    if (
      /timeout exceeded when trying to connect|too many clients|remaining connection slots|Connection terminated|Client has encountered a connection error|connect ECONNREFUSED|driver has already been destroyed|PGlite is closed/i.test(
        current.message,
      )
    ) {
      return true;
    }
  }
  return false;
}
