/**
 * The projection workers in a process of their own, for the tests that kill it:
 * `node --import tsx test/projections/worker-process.ts <DATABASE_URL> [batchSize]`; with
 * `EVENTSTORE_URL` in its environment the events are read from that EventStoreDB.
 * Runs every projection plus the audit one; logs JSON lines on stdout; SIGTERM stops it cleanly.
 */
import { pino } from 'pino';
import { openPostgres } from '../../src/db/database.ts';
import { openEventStoreDb } from '../../src/eventstore/eventstoredb/index.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { PROJECTORS } from '../../projections/catalog.ts';
import { startProjectionDaemon } from '../../projections/workers.ts';
import { auditProjector } from './fixtures.ts';

const [url, batchSize = '50'] = process.argv.slice(2);
if (!url) {
  process.stderr.write('usage: worker-process.ts <DATABASE_URL> [batchSize]\n');
  process.exit(2);
}
const database = openPostgres(url, { poolSize: 8 });
const eventStoreUrl = process.env.EVENTSTORE_URL;
const store = eventStoreUrl ? openEventStoreDb(eventStoreUrl) : new PostgresEventStore(database);
// Synchronous, so a line is out before a SIGKILL can land after it.
const logger = pino({ base: { pid: process.pid } }, pino.destination({ dest: 1, sync: true }));
const workers = startProjectionDaemon({
  database,
  store,
  logger,
  projectors: [...PROJECTORS.values(), auditProjector],
  batchSize: Number(batchSize),
  standbyRetryMs: 200,
  retryDelaysMs: [50, 100, 200, 400],
});
logger.info('worker started');
process.once('SIGTERM', () => {
  void workers
    .stop()
    .then(() => store.close())
    .then(() => database.close())
    .then(() => process.exit(0));
});
