import http from 'node:http';
import { sql } from 'kysely';
import { openPostgres } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { responseTimes, type ResponseTimesQuery } from '../../src/readmodel/response-times.ts';
import { ProjectionProgress } from '../../projections/progress.ts';
import { summarize, type BenchRow } from '../lib.ts';
import { BENCH_ORG, benchToken, startService } from '../service.ts';

const ORG = BENCH_ORG;
const STREAMS = 1_000;
const INCIDENTS = 100;
const RATE = 100;
const STATS_INCIDENTS = 100_000;
const STATS_REPEATS = 40;

const incidentBody = JSON.stringify({
  projectId: 'payments',
  title: 'Checkout latency above SLO',
  serviceName: 'checkout',
  severity: 'SEV2',
  environment: 'production',
});

/** One SSE connection read by hand (1,000 EventSource objects would load the bench more than the server). */
function openStream(url: string, token: string, onMessage: (id: string) => void): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { authorization: `Bearer ${token}` } }, (response) => {
      if (response.statusCode !== 200) return reject(new Error(`stream answered ${response.statusCode}`));
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        text += chunk;
        let end: number;
        while ((end = text.indexOf('\n\n')) !== -1) {
          const message = text.slice(0, end);
          text = text.slice(end + 2);
          const id = /^id: (.+)$/m.exec(message)?.[1];
          if (id !== undefined) onMessage(id);
        }
      });
      resolve(() => request.destroy());
    });
    request.on('error', reject);
  });
}

/**
 * 1,000 open streams on one process while notes are written at 100/s: how long from the write's
 * answer to each message, beside the projection lag of the same writes; the process's RSS with the
 * streams open beside none. Then the response-time statistics over 100,000 incidents.
 */
export async function liveStreams(url: string, seconds: number): Promise<BenchRow[]> {
  const database = openPostgres(url);
  await migrateToLatest(database.db);
  const progress = new ProjectionProgress(database);
  await progress.start();
  const its = await startService(url, { STREAM_MAX_PER_TOKEN: String(STREAMS) }, true);
  const closers: (() => void)[] = [];
  try {
    const token = benchToken('bench');
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const base = `${its.url}/api/orgs/${ORG}/incidents`;
    const incidents: string[] = [];
    for (let i = 0; i < INCIDENTS; i++) {
      const response = await fetch(base, { method: 'POST', headers, body: incidentBody });
      incidents.push(((await response.json()) as { incidentId: string }).incidentId);
    }
    // Warm the stream path once, so the RSS without streams already holds its code.
    (await openStream(`${base}/stream`, token, () => {}))();
    // Memory after a full collection each time: what is held, not garbage of the requests so far.
    await its.collectGarbage();
    const rssWithout = await its.rssBytes();
    const heapWithout = await heapUsedBytes(its.url);

    // When each write was answered, by position; every message's delay after it.
    const answered = new Map<string, number>();
    const early = new Map<string, number[]>();
    const delays: number[] = [];
    const onMessage = (id: string) => {
      const now = performance.now();
      const at = answered.get(id);
      if (at === undefined) early.set(id, [...(early.get(id) ?? []), now]);
      else delays.push(now - at);
    };
    // Ten people in each incident's war room.
    for (let i = 0; i < STREAMS; i += 50) {
      closers.push(
        ...(await Promise.all(
          Array.from({ length: 50 }, (_, j) =>
            openStream(`${base}/${incidents[(i + j) % INCIDENTS]}/stream`, token, onMessage),
          ),
        )),
      );
    }
    await its.collectGarbage();
    const rssWith = await its.rssBytes();
    const heapWith = await heapUsedBytes(its.url);

    // Writes answer at once (Prefer: respond-async), so the delay includes the projection, as the lag does.
    const lags: number[] = [];
    const failed: string[] = [];
    const pending: Promise<void>[] = [];
    const total = RATE * seconds;
    const started = performance.now();
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      pending.push(
        (async () => {
          let response: Response;
          try {
            response = await fetch(`${base}/${incidents[i % INCIDENTS]}/actions`, {
              method: 'POST',
              headers: { ...headers, prefer: 'respond-async' },
              body: JSON.stringify({ actionKind: 'NOTE', label: `note ${i}` }),
            });
          } catch (error) {
            failed.push(String((error as { cause?: unknown }).cause ?? error));
            return;
          }
          const { position } = (await response.json()) as { position: string };
          const at = performance.now();
          answered.set(position, at);
          for (const received of early.get(position) ?? []) delays.push(received - at);
          early.delete(position);
          if (await progress.waitFor(position, 30_000)) lags.push(performance.now() - at);
        })(),
      );
    }
    await Promise.all(pending);
    if (failed.length)
      process.stderr.write(`bench: live: ${failed.length} writes failed, e.g. ${failed[0]}\n`);
    const expected = (total - failed.length) * (STREAMS / INCIDENTS);
    const deadline = Date.now() + 30_000;
    while (delays.length < expected && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    const delivery = summarize(delays);
    const lag = summarize(lags);
    const lost = expected - delays.length;
    const scenario = `live, ${STREAMS.toLocaleString('en')} streams, ${RATE} writes/s`;
    const rows: BenchRow[] = [
      {
        scenario,
        metric: `delivery (write answered → message received) p50${lost ? ` (${lost} messages missing)` : ''}${failed.length ? ` (${failed.length} writes failed)` : ''}`,
        value: delivery.p50,
        unit: 'ms',
        baseline: { label: 'projection lag p50, same writes', value: lag.p50 },
      },
      {
        scenario,
        metric: 'delivery (write answered → message received) p99',
        value: delivery.p99,
        unit: 'ms',
        baseline: { label: 'projection lag p99, same writes', value: lag.p99 },
        target: '< 100 ms',
      },
      {
        scenario,
        metric: `service RSS with ${STREAMS} idle streams open`,
        value: rssWith / 2 ** 20,
        unit: 'MiB',
        baseline: { label: 'RSS with none open', value: rssWithout / 2 ** 20 },
      },
      {
        scenario,
        metric: 'RSS per idle stream',
        value: (rssWith - rssWithout) / STREAMS / 1024,
        unit: 'KiB',
        target: '< 20 KiB',
      },
      {
        scenario,
        metric: 'of which V8 heap per idle stream (the rest: sockets, buffers, pages the heap keeps)',
        value: (heapWith - heapWithout) / STREAMS / 1024,
        unit: 'KiB',
      },
    ];
    for (const close of closers) close();
    return [...rows, ...(await statistics(database))];
  } finally {
    for (const close of closers) close();
    await its.stop();
    await progress.stop();
    await database.close();
  }
}

/** The V8 heap the server uses, from its own /metrics. */
async function heapUsedBytes(serviceUrl: string): Promise<number> {
  const text = await (await fetch(`${serviceUrl}/metrics`)).text();
  const found = /^its_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  if (!found) throw new Error('the service exports no its_nodejs_heap_size_used_bytes');
  return Number(found[1]);
}

/** The statistics over 100,000 incidents of one org (among others'), beside a primary-key SELECT. */
async function statistics(database: ReturnType<typeof openPostgres>): Promise<BenchRow[]> {
  const db = database.db;
  const to = new Date();
  const from = new Date(to.getTime() - 30 * 86_400_000);
  // 100,000 incidents in the org over the last 30 days, 20,000 in another org.
  await sql`
    insert into incidents (org_id, id, project_id, title, service_name, status, severity, severity_rank, environment,
      created_by_type, created_by_ref, created_at, updated_at, acknowledged_at, resolved_at, cancelled_at, version)
    select case when i <= ${STATS_INCIDENTS} then 'stats' else 'stats-other' end, 'inc_s' || lpad(i::text, 8, '0'),
      'proj-' || (i % 5), 'generated', 'svc-' || (i % 13),
      (array['OPEN','INVESTIGATING','MITIGATED','RESOLVED','CANCELLED'])[1 + i % 5],
      'SEV' || (1 + (i / 5) % 4), 1 + (i / 5) % 4, case when i % 3 = 0 then 'staging' else 'production' end,
      'USER', 'bench', created, created,
      case when i % 5 > 0 then created + (i % 900) * interval '1 second' end,
      case when i % 5 = 3 then created + (i % 7200) * interval '1 second' end,
      case when i % 5 = 4 then created + interval '1 hour' end, 3
    from generate_series(1, ${STATS_INCIDENTS + 20_000}) as i,
      lateral (select ${from.toISOString()}::timestamptz + (i % ${STATS_INCIDENTS}) * interval '25 seconds' as created) as t`.execute(
    db,
  );
  await sql`vacuum analyze incidents`.execute(db);
  const range = { from: from.toISOString(), to: to.toISOString() };
  const queries: ResponseTimesQuery[] = [
    range,
    { ...range, groupBy: 'service' },
    { ...range, groupBy: 'week' },
    { ...range, groupBy: 'severity', environment: 'production' },
  ];
  const time = async (run: () => Promise<unknown>) => {
    const started = performance.now();
    await run();
    return performance.now() - started;
  };
  const answers: number[] = [];
  const lookups: number[] = [];
  for (let repeat = 0; repeat < STATS_REPEATS; repeat++) {
    lookups.push(
      await time(() =>
        db
          .selectFrom('incidents')
          .selectAll()
          .where('org_id', '=', 'stats')
          .where('id', '=', `inc_s${String(1 + repeat * 97).padStart(8, '0')}`)
          .execute(),
      ),
    );
    answers.push(await time(() => responseTimes(db, 'stats', queries[repeat % queries.length]!)));
  }
  const answer = summarize(answers);
  const lookup = summarize(lookups);
  const scenario = `stats, ${STATS_INCIDENTS.toLocaleString('en')} incidents in the org (last 30 days)`;
  return [
    {
      scenario,
      metric: 'response-times answer p50',
      value: answer.p50,
      unit: 'ms',
      baseline: { label: 'primary-key SELECT of one incident', value: lookup.p50 },
    },
    {
      scenario,
      metric: 'response-times answer p99',
      value: answer.p99,
      unit: 'ms',
      baseline: { label: 'primary-key SELECT of one incident', value: lookup.p99 },
      target: '< 50 ms',
    },
  ];
}
