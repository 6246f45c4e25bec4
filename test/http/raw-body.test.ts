import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { expectProblem, startWithIncident, validIncident } from './support.ts';

describe('bodies are checked once, on their raw text', () => {
  let t: TestApp, org: string, token: string, incident: string;
  beforeAll(async () => {
    ({ t, org, token, incident } = await startWithIncident());
  });
  afterAll(() => t?.cleanup());

  const post = (url: string, payload: string) =>
    t.request({ method: 'POST', url, token, headers: { 'content-type': 'application/json' }, payload });

  it('refuses 1 MiB of tiny items in about the time JSON.parse takes, not a walk of every element', async () => {
    const body = JSON.stringify({ ...validIncident, tags: new Array(524_000).fill(0) });
    const ratios: number[] = [];
    for (let run = 0; run < 5; run++) {
      let started = performance.now();
      JSON.parse(body);
      const parse = performance.now() - started;
      started = performance.now();
      expectProblem(await post(`/api/orgs/${org}/incidents`, body), 400, 'VALIDATION_FAILED');
      ratios.push((performance.now() - started) / parse);
    }
    // The baseline is measured in the same run; walking every element with its path took 60x and more.
    const median = ratios.sort((a, b) => a - b)[2]!;
    expect(median).toBeLessThan(20);
  });

  it('names the field that holds NUL or half a surrogate pair, escaped in the raw text', async () => {
    const url = `/api/orgs/${org}/incidents/${incident}/signals`;
    for (const [raw, path] of [
      ['{"signalType":"LOG","source":"s","summary":"a\\u0000b"}', 'summary'],
      ['{"signalType":"LOG","source":"s","summary":"\\ud800x"}', 'summary'],
      ['{"signalType":"LOG","source":"s","summary":"x\\udc00"}', 'summary'],
      ['{"signalType":"LOG","source":"s","summary":"s","data":{"list":[1,"\\uDBFF"]}}', 'data.list.1'],
    ] as const) {
      const problem = expectProblem(await post(url, raw), 400, 'VALIDATION_FAILED');
      expect(
        problem.errors?.map((error) => error.path),
        raw,
      ).toEqual([path]);
    }
    // A pair, and an escaped backslash before "u0000", are ordinary text.
    for (const raw of [
      '{"signalType":"LOG","source":"s","summary":"\\ud83d\\ude00"}',
      '{"signalType":"LOG","source":"s","summary":"\\\\u0000 is how JSON spells NUL"}',
    ]) {
      expect((await post(url, raw)).statusCode, raw).toBe(200);
    }
  });

  it('refuses numbers JavaScript cannot hold as sent: 1e400, integers beyond 2^53', async () => {
    const url = `/api/orgs/${org}/incidents/${incident}/signals`;
    const signal = (data: string) => `{"signalType":"METRIC","source":"s","summary":"n","data":${data}}`;
    for (const data of [
      '{"x":1e400}',
      '{"x":-1e400}',
      '{"x":9007199254740993}',
      '{"x":[-9007199254740993]}',
    ]) {
      const problem = expectProblem(await post(url, signal(data)), 400, 'VALIDATION_FAILED');
      expect(problem.errors?.[0]?.message, data).toMatch(/finite/);
    }
    for (const data of ['{"x":9007199254740991}', '{"x":-9007199254740991}', '{"x":1.5e300}', '{"x":0.1}']) {
      expect((await post(url, signal(data))).statusCode, data).toBe(200);
    }
    const errorBudget = `{"sloId":"a","windowStart":"2026-01-01T00:00:00Z","windowEnd":"2026-01-01T01:00:00Z","errorBudgetConsumed":1e999,"thresholdBreached":true}`;
    expectProblem(
      await post(`/api/orgs/${org}/incidents/${incident}/slo-violations`, errorBudget),
      400,
      'VALIDATION_FAILED',
    );
  });
});
