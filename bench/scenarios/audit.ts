import { createHash, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { appendChained } from '../../src/audit/append.ts';
import { GENESIS_HASH, chainEvents, chainText, hashEvent, type ChainHead } from '../../src/audit/chain.ts';
import { verifyOrg } from '../../src/audit/verify.ts';
import { openPostgres, type Database } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { rebuildProjections } from '../../projections/index.ts';
import { noteEvent, throughput, type BenchRow } from '../lib.ts';
import { seedEventLog } from './projections.ts';

const EVENTS_PER_INCIDENT = 20;
const BATCH = 20_000;

/**
 * The chain's cost: appends/s with and without hashing in the same run, and verification of a
 * large chained log (the pass `its audit verify <org>` makes) beside a bare SHA-256 of the same bytes.
 */
export async function auditChain(url: string, durationMs: number, events: number): Promise<BenchRow[]> {
  const database = openPostgres(url, { poolSize: 20, statementTimeoutMs: 0 });
  await migrateToLatest(database.db);
  const store = new PostgresEventStore(database);
  try {
    // Verification first: its rebuild of the read model reads the whole log, incident streams only.
    const verified = await verifyCost(database, store, events);
    return [...(await appendCost(store, durationMs)), ...verified];
  } finally {
    await database.close();
  }
}

async function appendCost(store: PostgresEventStore, durationMs: number): Promise<BenchRow[]> {
  const { data, metadata } = noteEvent();
  const event = () => ({ eventId: randomUUID(), type: 'INCIDENT_NOTE_ADDED', data, metadata });
  const rows: BenchRow[] = [];
  for (const writers of [1, 16]) {
    // Every writer alternates a plain and a chained append (which goes first alternates too), so
    // both meet the same machine, table size and neighbours; each mode's time is summed apart.
    const spent = { plain: 0, chained: 0 };
    const done = { plain: 0, chained: 0 };
    const run = randomUUID().slice(0, 8);
    const heads = new Map<number, ChainHead>();
    const timed = async (mode: 'plain' | 'chained', append: () => Promise<unknown>) => {
      const started = performance.now();
      await append();
      spent[mode] += performance.now() - started;
      done[mode]++;
    };
    await throughput(writers, durationMs, async (loop, iteration) => {
      const plain = () =>
        timed('plain', () =>
          store.append(
            `incident-benchwrites.p${run}_${loop}`,
            [event()],
            iteration === 0 ? 'no_stream' : iteration - 1,
          ),
        );
      // The writer carries its stream's head, as the command handler has it after its load.
      const chained = () =>
        timed('chained', async () => {
          const stream = `incident-benchwrites.c${run}_${loop}`;
          const head = heads.get(loop) ?? { version: -1, hash: null };
          heads.set(loop, (await appendChained(store, stream, head, [event()])).head!);
        });
      if (iteration % 2 === 0) await plain().then(chained);
      else await chained().then(plain);
    });
    // Appends/s of one mode: its appends over its share of the writers' time.
    const rate = (mode: 'plain' | 'chained') => (done[mode] * writers) / (spent[mode] / 1000);
    rows.push({
      scenario: 'audit',
      metric: `appends/s with the hash chain, ${writers} writer${writers > 1 ? 's' : ''}`,
      value: rate('chained'),
      unit: 'events/s',
      baseline: { label: 'the same appends, unhashed, interleaved', value: rate('plain') },
      target: '>= 0.95',
    });
  }
  // What the chain adds on the CPU, apart from the store: hashing one event onto a head.
  const head = { version: 0, hash: GENESIS_HASH };
  const sample = event();
  const started = performance.now();
  const hashes = 20_000;
  for (let i = 0; i < hashes; i++) chainEvents(head, [sample]);
  rows.push({
    scenario: 'audit',
    metric: 'CPU to hash one appended event (chainEvents)',
    value: ((performance.now() - started) * 1000) / hashes,
    unit: 'µs',
  });
  return rows;
}

/** Seeds `events` events, chains them in place, fills the incidents read model, then verifies the org. */
async function verifyCost(
  database: Database,
  store: PostgresEventStore,
  events: number,
): Promise<BenchRow[]> {
  const seeded = await seedEventLog(database, Math.max(1, Math.round(events / EVENTS_PER_INCIDENT)));
  // Readers see a transaction once every older one on the server has ended (other databases' too).
  while ((await store.countEvents({ streamPrefix: 'incident-bench.' })) < seeded)
    await new Promise((resolve) => setTimeout(resolve, 100));
  // Chain the seeded log in place, batch by batch, and time a bare SHA-256 of the very bytes hashed.
  const last = new Map<string, string>();
  let bareSeconds = 0;
  for (let fromPosition: string | null = null; ;) {
    const batch = await store.readAll({ fromPosition, streamPrefix: 'incident-bench.', limit: BATCH });
    if (batch.length === 0) break;
    const texts = batch.map((event) => {
      const previous = last.get(event.streamName) ?? GENESIS_HASH;
      last.set(event.streamName, hashEvent(previous, event));
      return chainText(previous, event);
    });
    const started = performance.now();
    const hashes = texts.map((text) => createHash('sha256').update(text).digest('hex'));
    bareSeconds += (performance.now() - started) / 1000;
    await sql`
      update its_events e set metadata = e.metadata || jsonb_build_object('hash', u.hash)
        from unnest(${batch.map((event) => event.streamName)}::text[], ${batch.map((event) => event.version)}::bigint[], ${hashes}::text[]) as u(stream, version, hash)
       where e.stream_name = u.stream and e.version = u.version`.execute(database.db);
    if (batch.length < BATCH) break;
    fromPosition = batch.at(-1)!.position;
  }
  const head = (await store.headPosition())!;
  await database.db
    .insertInto('projection_checkpoints')
    .values({ name: 'incidents', position: head, state: 'idle' })
    .execute();
  const rebuilt = await rebuildProjections({ database, store, names: ['incidents'] });
  if (rebuilt[0]!.status === 'rejected') throw rebuilt[0]!.reason;

  const started = performance.now();
  const results = await verifyOrg({ database, store }, 'bench');
  const seconds = (performance.now() - started) / 1000;
  const bad = results.find((result) => !result.valid || !result.readModel.matches || result.unchained > 0);
  if (bad) throw new Error(`the seeded chain does not verify: ${JSON.stringify(bad)}`);
  return [
    {
      scenario: 'audit',
      metric: `its audit verify over ${seeded.toLocaleString('en')} events (${results.length.toLocaleString('en')} streams, read model compared)`,
      value: seeded / seconds,
      unit: 'events/s',
      baseline: { label: 'bare SHA-256 of the same bytes', value: seeded / bareSeconds },
    },
  ];
}
