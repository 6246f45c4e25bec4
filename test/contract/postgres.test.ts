import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { openTestDatabase, serverUrl } from '../support/database.ts';
import { describeEventStoreContract } from './eventstore-contract.ts';

describeEventStoreContract('PGlite (embedded PostgreSQL)', async () => {
  const test = await openTestDatabase({ kind: 'pglite' });
  return { store: new PostgresEventStore(test.database), cleanup: test.cleanup };
});

describeEventStoreContract(
  'PostgreSQL server',
  async () => {
    const test = await openTestDatabase({ kind: 'server' });
    return { store: new PostgresEventStore(test.database), cleanup: test.cleanup };
  },
  { skipWhy: serverUrl ? undefined : 'DATABASE_URL is not set; only PGlite ran' },
);
