import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { adminQuery } from './admin-query.ts';
import { openPGlite, openPostgres, type Database, type PostgresOptions } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import type { EventStore } from '../../src/eventstore/port.ts';
import type { EventStoreDbTestServer } from './eventstoredb-server/index.ts';
import { openTestEventStore, testEventStoreKind, type TestEventStoreKind } from './eventstore.ts';

export interface TestDatabase {
  database: Database;
  /** Connection string of the scratch database; undefined on PGlite. */
  url: string | undefined;
  /** The events beside it: PostgreSQL, or EventStoreDB under ITS_TEST_EVENT_STORE=eventstoredb (support/eventstore.ts). */
  store: EventStore;
  /** EVENTSTORE_URL of those events, for child processes and configs; undefined when they are in PostgreSQL. */
  eventStoreUrl: string | undefined;
  /** The EventStoreDB test server behind `store`, when one was started (its fault switches). */
  eventStoreServer: EventStoreDbTestServer | undefined;
  cleanup(): Promise<void>;
}

/** Which PostgreSQL the suite runs on: the server named by DATABASE_URL, else embedded PGlite. */
export const serverUrl = process.env.DATABASE_URL;
export const databaseLabel = `${serverUrl ? 'PostgreSQL server' : 'PGlite'}${testEventStoreKind === 'eventstoredb' ? ', events in EventStoreDB' : ''}`;

/** A scratch database on the server (created here, dropped by cleanup), or an in-memory PGlite. */
export async function openTestDatabase(
  options: {
    kind?: 'server' | 'pglite';
    migrate?: boolean;
    postgres?: PostgresOptions;
    eventStore?: TestEventStoreKind;
  } = {},
): Promise<TestDatabase> {
  const kind = options.kind ?? (serverUrl ? 'server' : 'pglite');
  let database: Database;
  let url: string | undefined;
  let drop = async () => {};
  if (kind === 'server') {
    if (!serverUrl) throw new Error('DATABASE_URL is not set');
    const name = `its_test_${randomBytes(6).toString('hex')}`;
    await adminQuery(serverUrl, `create database ${name}`);
    const target = new URL(serverUrl);
    target.pathname = `/${name}`;
    url = target.toString();
    database = openPostgres(url, options.postgres);
    drop = () => adminQuery(serverUrl, `drop database if exists ${name} with (force)`);
  } else {
    database = await openPGlite();
  }
  if (options.migrate !== false) await migrateToLatest(database.db);
  const events = await openTestEventStore(database, options.eventStore);
  return {
    database,
    url,
    store: events.store,
    eventStoreUrl: events.url,
    eventStoreServer: events.server,
    async cleanup() {
      await events.close();
      await database.close();
      await drop();
    },
  };
}

/** The scratch database of a describe block, with the event store beside it. */
export interface TestStore {
  test: TestDatabase;
  store: EventStore;
}

/**
 * Opens a scratch database (and the event store on it) before the tests of the calling describe
 * block and drops it after them; the returned object holds both once they run.
 */
export function useTestStore(): TestStore {
  const scope = {} as TestStore;
  beforeAll(async () => {
    scope.test = await openTestDatabase();
    scope.store = scope.test.store;
  });
  afterAll(async () => {
    await scope.test?.cleanup();
  });
  return scope;
}
