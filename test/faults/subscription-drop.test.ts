import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, type Database } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { testEventStoreKind } from '../support/eventstore.ts';
import { collect } from '../support/subscriber.ts';
import {
  postgresBinDir,
  startDedicatedPostgres,
  type DedicatedPostgres,
} from '../support/postgres-instance.ts';

const hasBinaries = postgresBinDir() !== null;
// Under the EventStoreDB switch the same fault is test/faults/eventstoredb-faults.test.ts (the server drops the subscription).
const onPostgres = testEventStoreKind === 'postgres';
if (!hasBinaries)
  console.warn('subscription drop test: SKIPPED (no PostgreSQL server binaries to run a dedicated instance)');

describe.skipIf(!hasBinaries || !onPostgres)(
  'a subscriber whose database connection drops mid-stream',
  () => {
    let server: DedicatedPostgres;
    let database: Database;
    let store: PostgresEventStore;
    beforeAll(async () => {
      server = await startDedicatedPostgres();
      database = openPostgres(server.url, { connectTimeoutMs: 1000 });
      await migrateToLatest(database.db);
      store = new PostgresEventStore(database);
    });
    afterAll(async () => {
      await database?.close();
      await server?.destroy();
    });

    it('resumes after the server restarts without a gap or a repeat', async () => {
      const prefix = `incident-drop${randomUUID().slice(0, 6)}.`;
      const append = (i: number) =>
        store.append(
          `${prefix}inc_${i}`,
          [{ eventId: randomUUID(), type: 'N', data: { i }, metadata: {} }],
          'no_stream',
        );
      for (let i = 0; i < 50; i++) await append(i);

      const subscriber = collect(store, prefix);
      const { received, until } = subscriber;
      await until(50);

      await server.stop('immediate');
      await server.start();
      // Appends after the restart (retried until the pool reconnects) must reach the same subscriber.
      for (let i = 50; i < 100; i++) {
        for (;;) {
          try {
            await append(i);
            break;
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
      }
      await until(100);
      await subscriber.stop();
      expect(received.map((e) => e.data.i)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    }, 60_000);
  },
);
