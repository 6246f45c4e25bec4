import { fork } from 'node:child_process';
import { summarize, type BenchRow } from '../lib.ts';
import { BENCH_ORG, benchToken, startService } from '../service.ts';

const ORG = BENCH_ORG;
const POSTERS = 8;

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

    // The posters run in a process of their own: in this one, their uploads would slow the GETs
    // being timed here, whatever the server does.
    const posters = fork(
      new URL('../edge-poster.ts', import.meta.url).pathname,
      [base, attacker, String(POSTERS)],
      {
        execArgv: ['--import', 'tsx'],
      },
    );
    let loaded: ReturnType<typeof summarize>;
    let answers: Record<string, number>;
    try {
      // Let every poster have a body in flight before timing.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      loaded = summarize(await getLatencies(details, reader, seconds * 1000));
    } finally {
      const ended = new Promise<Record<string, number>>((resolve) => posters.once('message', resolve));
      posters.send('stop');
      answers = await ended;
    }
    const counted = Object.entries(answers)
      .map(([outcome, n]) => `${n}× ${outcome}`)
      .join(', ');
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
