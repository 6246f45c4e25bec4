/**
 * `npm run bench`: every scenario against a scratch database on the local PostgreSQL, one table of
 * figures beside the baselines measured in the same run, written to bench/results/.
 * BENCH_SCENARIOS=a,b runs a subset; BENCH_SECONDS scales the timed phases.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { auditChain } from './scenarios/audit.ts';
import { commandLatency } from './scenarios/command-latency.ts';
import { edgeBodies } from './scenarios/edge.ts';
import { eventStoreAppends } from './scenarios/eventstore.ts';
import { eventStoreDbScenario } from './scenarios/eventstoredb.ts';
import { httpCommands } from './scenarios/http.ts';
import { ingestAlerts } from './scenarios/ingest.ts';
import { listQueries } from './scenarios/list-queries.ts';
import { liveStreams } from './scenarios/live.ts';
import { projectionLag, projectionRebuild } from './scenarios/projections.ts';
import { webhookDeliveries } from './scenarios/webhooks.ts';
import { adminQuery } from '../test/support/admin-query.ts';
import { formatNumber, meetsTarget, ratio, scratchDatabase, type BenchRow } from './lib.ts';

const serverUrl =
  process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const only = process.env.BENCH_SCENARIOS?.split(',');

type Scenario = (url: string) => Promise<BenchRow[]>;
const scenarios: Record<string, Scenario> = {
  eventstore: (url) => eventStoreAppends(url, seconds * 1000),
  'command-latency': commandLatency,
  'projection-lag': (url) => projectionLag(url, 100, seconds * 3),
  rebuild: (url) => projectionRebuild(url, Number(process.env.BENCH_REBUILD_INCIDENTS ?? 50_000)),
  lists: listQueries,
  live: (url) => liveStreams(url, seconds * 2),
  http: (url) => httpCommands(url, seconds * 2, Number(process.env.BENCH_SOAK_SECONDS ?? 120)),
  ingest: (url) => ingestAlerts(url, seconds * 2),
  audit: (url) => auditChain(url, seconds * 2000, Number(process.env.BENCH_AUDIT_EVENTS ?? 1_000_000)),
  webhooks: (url) => webhookDeliveries(url, Number(process.env.BENCH_WEBHOOK_EVENTS ?? 10_000)),
  eventstoredb: () => eventStoreDbScenario(seconds * 1000),
  edge: (url) => edgeBodies(url, seconds),
};

function table(rows: BenchRow[]): string {
  const lines = [
    '| scenario | figure | value | baseline (same run) | ratio | target | met |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const row of rows) {
    const r = ratio(row);
    const met = meetsTarget(row);
    lines.push(
      `| ${row.scenario} | ${row.metric} | ${formatNumber(row.value)} ${row.unit} | ${row.baseline ? `${formatNumber(row.baseline.value)} (${row.baseline.label})` : ''} | ${r === undefined ? '' : r.toFixed(2)} | ${row.target ?? ''} | ${met === undefined ? '' : met ? 'yes' : 'NO'} |`,
    );
  }
  return lines.join('\n');
}

const rows: BenchRow[] = [];
const started = Date.now();
for (const [name, scenario] of Object.entries(scenarios)) {
  if (only && !only.includes(name)) continue;
  const scratch = await scratchDatabase(serverUrl);
  process.stderr.write(`bench: ${name}…\n`);
  try {
    const figures = await scenario(scratch.url);
    rows.push(...figures);
    // Each scenario's rows as soon as they exist, so a long run shows progress.
    process.stderr.write(`${table(figures)}\n\n`);
  } catch (error) {
    // One broken scenario must not cost the figures of the others.
    process.stderr.write(`bench: ${name} failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    rows.push({
      scenario: name,
      metric: `FAILED: ${error instanceof Error ? error.message : String(error)}`,
      value: Number.NaN,
      unit: '',
    });
  } finally {
    await scratch.drop();
    // The next scenario starts on a quiet server: without it, it would pay for writing out the pages
    // this one dirtied (a million-event rebuild leaves gigabytes of them).
    await adminQuery(serverUrl, 'checkpoint').catch((error: unknown) => {
      process.stderr.write(`bench: no checkpoint between scenarios: ${String(error)}\n`);
    });
  }
}
const markdown = `# ITS bench, ${new Date().toISOString()}\n\n${table(rows)}\n\nTotal time: ${((Date.now() - started) / 1000).toFixed(0)} s on ${(await import('node:os')).cpus().length} cores.\n`;
console.log(markdown);
await mkdir(new URL('./results/', import.meta.url), { recursive: true });
await writeFile(new URL('./results/latest.md', import.meta.url), markdown);
await writeFile(
  new URL('./results/latest.json', import.meta.url),
  JSON.stringify(
    {
      at: new Date().toISOString(),
      rows: rows.map((row) => ({ ...row, ratio: ratio(row), met: meetsTarget(row) })),
    },
    null,
    2,
  ),
);
