import { summarize, type BenchRow } from '../lib.ts';
import { BENCH_ORG, benchToken, startService } from '../service.ts';

const ORG = BENCH_ORG;
const POSTERS = 8;
/** The largest `{"tags":[0,0,…]}` within the 1 MiB body limit: 524,283 tiny items. */
const TINY_ITEMS = (1024 * 1024 - 10) / 2;
const tinyItems = `{"tags":[${Array.from({ length: TINY_ITEMS }, () => '0').join(',')}]}`;

/** One user's GETs of one incident, one after another, for `ms`: each latency in ms. */
async function getLatencies(url: string, authorization: string, ms: number): Promise<number[]> {
  const samples: number[] = [];
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    const started = performance.now();
    const response = await fetch(url, { headers: { authorization } });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`GET answered ${response.status}`);
    samples.push(performance.now() - started);
  }
  return samples;
}

/** Another user's GET latency, alone and while 8 clients post 1 MiB bodies of tiny items (issue 14, point 3). */
export async function edgeBodies(url: string, seconds: number): Promise<BenchRow[]> {
  const its = await startService(url);
  try {
    const reader = `Bearer ${benchToken('reader')}`;
    const attacker = `Bearer ${benchToken('attacker')}`;
    const base = `${its.url}/api/orgs/${ORG}/incidents`;
    const created = await fetch(base, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: reader },
      body: JSON.stringify({
        projectId: 'payments',
        title: 'Checkout latency above SLO',
        serviceName: 'checkout',
        severity: 'SEV2',
        environment: 'production',
      }),
    });
    if (created.status !== 201) throw new Error(`create answered ${created.status}: ${await created.text()}`);
    const details = `${base}/${((await created.json()) as { incidentId: string }).incidentId}`;

    await getLatencies(details, reader, 1000);
    const alone = summarize(await getLatencies(details, reader, seconds * 1000));

    const answers = new Map<number, number>();
    let posting = true;
    const posters = Array.from({ length: POSTERS }, async () => {
      while (posting) {
        const response = await fetch(base, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: attacker },
          body: tinyItems,
        });
        await response.arrayBuffer();
        answers.set(response.status, (answers.get(response.status) ?? 0) + 1);
      }
    });
    let loaded: ReturnType<typeof summarize>;
    try {
      // Let every poster have a body in flight before timing.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      loaded = summarize(await getLatencies(details, reader, seconds * 1000));
    } finally {
      posting = false;
      await Promise.all(posters);
    }
    const counted = [...answers].map(([status, n]) => `${n}× ${status}`).join(', ');
    const scenario = `edge, ${POSTERS} clients posting 1 MiB of tiny items`;
    const label = 'the same GET, alone';
    return [
      {
        scenario,
        metric: `another user's GET …/incidents/{id}: p50 latency (posts answered: ${counted})`,
        value: loaded.p50,
        unit: 'ms',
        baseline: { label, value: alone.p50 },
        target: '<= 2',
      },
      {
        scenario,
        metric: `another user's GET …/incidents/{id}: p99 latency`,
        value: loaded.p99,
        unit: 'ms',
        baseline: { label, value: alone.p99 },
        target: '<= 2',
      },
    ];
  } finally {
    await its.stop();
  }
}
