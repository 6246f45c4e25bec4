/**
 * The one switch that puts a suite's events in EventStoreDB: `ITS_TEST_EVENT_STORE=eventstoredb`
 * (the `eventstoredb` project in vitest.config.ts sets it). Each store opened here gets a fresh
 * in-process test server, as each scratch database is fresh; with `EVENTSTORE_URL` set, a real
 * server is used instead. Read models stay in PostgreSQL either way.
 */
import type { Database } from '../../src/db/database.ts';
import { openEventStoreDb } from '../../src/eventstore/eventstoredb/index.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import type { EventStore } from '../../src/eventstore/port.ts';
import { startEventStoreDbTestServer, type EventStoreDbTestServer } from './eventstoredb-server/index.ts';

export type TestEventStoreKind = 'postgres' | 'eventstoredb';

export const testEventStoreKind: TestEventStoreKind =
  process.env.ITS_TEST_EVENT_STORE === 'eventstoredb' ? 'eventstoredb' : 'postgres';
export const eventStoreLabel =
  testEventStoreKind === 'eventstoredb'
    ? process.env.EVENTSTORE_URL
      ? 'events in EventStoreDB (EVENTSTORE_URL)'
      : 'events in EventStoreDB (test server)'
    : 'events in PostgreSQL';

export interface TestEventStore {
  store: EventStore;
  /** The `EVENTSTORE_URL` a child process or a config needs to reach the same events; undefined on PostgreSQL. */
  url: string | undefined;
  /** The in-process test server, when one was started (for fault switches). */
  server: EventStoreDbTestServer | undefined;
  close(): Promise<void>;
}

export async function openTestEventStore(
  database: Database,
  kind: TestEventStoreKind = testEventStoreKind,
): Promise<TestEventStore> {
  if (kind === 'postgres')
    return {
      store: new PostgresEventStore(database),
      url: undefined,
      server: undefined,
      close: async () => {},
    };
  const external = process.env.EVENTSTORE_URL;
  const server = external ? undefined : await startEventStoreDbTestServer();
  const url = external ?? server!.url;
  const store = openEventStoreDb(url);
  return {
    store,
    url,
    server,
    async close() {
      await store.close();
      await server?.close();
    },
  };
}

/** The environment a child process needs to open the same event store (see test/projections/worker-process.ts). */
export function eventStoreEnv(url: string | undefined): Record<string, string> {
  return url ? { EVENTSTORE_URL: url } : {};
}
