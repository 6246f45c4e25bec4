/**
 * The webhook delivery worker alone in a process, for the tests that kill it:
 * `node --import tsx test/webhooks/worker-process.ts <DATABASE_URL>`. Logs JSON lines on stdout.
 */
import { pino } from 'pino';
import { loadConfig } from '../../src/config.ts';
import { openPostgres } from '../../src/db/database.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { openWebhooks } from '../../src/webhooks/index.ts';
import { FAST } from './timings.ts';

const [url] = process.argv.slice(2);
if (!url) {
  process.stderr.write('usage: worker-process.ts <DATABASE_URL>\n');
  process.exit(2);
}
const config = loadConfig({ JWT_SECRET: 'unused-by-the-worker', WEBHOOK_ALLOW_PRIVATE: 'true' });
const database = openPostgres(url, { poolSize: 6 });
const store = new PostgresEventStore(database);
// Synchronous, so a line is out before a SIGKILL can land after it.
const logger = pino({ base: { pid: process.pid } }, pino.destination({ dest: 1, sync: true }));
const { Registry } = await import('prom-client');
const webhooks = openWebhooks({
  config,
  database,
  store,
  registry: new Registry(),
  logger,
  tuning: { ...FAST, timeoutMs: 1000, leaseMs: 3000, batchSize: 20 },
});
webhooks.startWorker();
logger.info('webhook worker started');
process.once('SIGTERM', () => {
  void webhooks
    .stop()
    .then(() => database.close())
    .then(() => process.exit(0));
});
