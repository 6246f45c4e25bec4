import { openEventStoreDb } from '../../src/eventstore/eventstoredb/index.ts';
import { startEventStoreDbTestServer } from '../support/eventstoredb-server/index.ts';
import { describeEventStoreContract } from './eventstore-contract.ts';

describeEventStoreContract('EventStoreDB test server (gRPC, in process)', async () => {
  const server = await startEventStoreDbTestServer();
  const store = openEventStoreDb(server.url);
  return {
    store,
    async cleanup() {
      await store.close();
      await server.close();
    },
  };
});
