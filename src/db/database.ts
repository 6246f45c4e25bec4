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
  const sessions = new Set<pg.Client>();
  const newSession = async (): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString, connectionTimeoutMillis: connectTimeoutMs });
    client.on('error', () => {});
    await client.connect();
    sessions.add(client);
    client.on('end', () => sessions.delete(client));
    return client;
  };

  return {
    kind: 'postgres',
    db,
    async listen(channel, onNotify) {
      const listener = new ReconnectingListener(newSession, channel, onNotify);
      await listener.start();
      return () => listener.stop();
    },
    async tryLock(name) {
      const client = await newSession();
      const { rows } = await client.query<{ locked: boolean }>(
        'select pg_try_advisory_lock(hashtextextended($1, 0)) as locked',
        [name],
      );
      if (!rows[0]?.locked) {
        await client.end();
        return null;
      }
      const lost = new Promise<void>((resolve) => {
        client.on('end', resolve);
        client.on('error', () => resolve());
      });
      return {
        lost,
        release: async () => {
          await client.end().catch(() => {});
        },
      };
    },
    async close() {
      await Promise.all([...sessions].map((client) => client.end().catch(() => {})));
      await db.destroy();
    },
  };
}

/** LISTEN on a dedicated connection that comes back by itself after the server restarts. */
class ReconnectingListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(
    private readonly connect: () => Promise<pg.Client>,
    private readonly channel: string,
    private readonly onNotify: (payload: string | null) => void,
  ) {}

  async start(): Promise<void> {
    await this.open();
  }

  private async open(): Promise<void> {
    const client = await this.connect();
    client.on('notification', (message) => {
      if (message.channel === this.channel) this.onNotify(message.payload ?? '');
    });
    const reopen = () => this.scheduleReopen(client);
    client.on('error', reopen);
    client.on('end', reopen);
    await client.query(`listen ${pg.escapeIdentifier(this.channel)}`);
    this.client = client;
  }

  private scheduleReopen(failed: pg.Client, delayMs = 200): void {
    if (this.stopped || this.client !== failed || this.retry) return;
    this.client = null;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.open()
        .then(() => this.onNotify(null))
        .catch(() => {
          this.client = failed;
          this.scheduleReopen(failed, Math.min(delayMs * 2, 5000));
        });
    }, delayMs);
    this.retry.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.client?.end().catch(() => {});
    this.client = null;
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

/** PostgreSQL (pg) failures that mean the server is gone, not that the query was wrong. */
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
        /^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN)$/.test(code) ||
        code === 'ENOTFOUND')
    ) {
      return true;
    }
    if (
      /timeout exceeded when trying to connect|Connection terminated|Client has encountered a connection error|connect ECONNREFUSED|driver has already been destroyed|PGlite is closed/i.test(
        current.message,
      )
    ) {
      return true;
    }
  }
  return false;
}
