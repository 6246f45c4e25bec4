import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import {
  COUNT_SLICE_BYTES,
  CountingJsonValues,
  JsonValueCounter,
  MAX_JSON_VALUES,
  VALUES_MESSAGE,
} from '../../src/http/unstorable.ts';
import { expectProblem, startWithIncident, validIncident } from './support.ts';

describe('bodies are checked once, on their raw text', () => {
  let t: TestApp, org: string, token: string, incident: string;
  beforeAll(async () => {
    ({ t, org, token, incident } = await startWithIncident());
  });
  afterAll(() => t?.cleanup());

  const post = (url: string, payload: string) =>
    t.request({ method: 'POST', url, token, headers: { 'content-type': 'application/json' }, payload });

  it('refuses 1 MiB of tiny items as it arrives, before it is parsed: the values are counted on the raw bytes', async () => {
    const tags = new Array(524_000).fill(0).join(',');
    for (const body of [
      JSON.stringify({ ...validIncident, tags: new Array(524_000).fill(0) }),
      // Cut short, so it would not parse: refused for its values all the same, as nothing parsed it.
      `{"tags":[${tags}`,
    ]) {
      const problem = expectProblem(await post(`/api/orgs/${org}/incidents`, body), 400, 'VALIDATION_FAILED');
      expect(problem.errors).toEqual([{ path: 'body', message: VALUES_MESSAGE }]);
    }
    // Text that does not parse and holds no more values than allowed is still a parse error.
    expect((await post(`/api/orgs/${org}/incidents`, '{"tags":[0,0')).json()).toMatchObject({
      code: 'VALIDATION_FAILED',
      detail: expect.not.stringContaining('values'),
    });
  });

  it(`counts values up to ${MAX_JSON_VALUES.toLocaleString('en')} and refuses the next, however the bytes arrive`, () => {
    const fits = (text: string, chunk: number) => {
      const counter = new JsonValueCounter();
      const bytes = Buffer.from(text);
      let ok = true;
      for (let at = 0; at < bytes.length; at += chunk)
        ok = counter.feed(bytes.subarray(at, at + chunk)) && ok;
      return ok;
    };
    // An array of n items is n + 1 values.
    const items = (n: number) => `[${'0,'.repeat(n - 1)}0]`;
    for (const chunk of [1, 7, 65_536]) {
      expect(fits(items(MAX_JSON_VALUES - 1), chunk)).toBe(true);
      expect(fits(items(MAX_JSON_VALUES), chunk)).toBe(false);
      // Commas and brackets inside strings, escaped quotes and backslashes, and text of several
      // bytes per character are text, not values.
      expect(fits(`["${',[{\\"é€😀'.repeat(MAX_JSON_VALUES)}"]`, chunk)).toBe(true);
      expect(fits(`["\\\\",${'0,'.repeat(MAX_JSON_VALUES)}0]`, chunk)).toBe(false);
      expect(fits(`{${'"k":{},'.repeat(MAX_JSON_VALUES / 2 - 1)}"k":0}`, chunk)).toBe(true);
    }
  });

  it(`counts a body ${COUNT_SLICE_BYTES / 1024} KiB at a time, the event loop free in between, and passes it on unchanged`, async () => {
    // A read of 64 KiB of tiny items: counted whole, nothing else would run until it was done.
    const chunk = Buffer.from(`[${'0,'.repeat(32 * 1024 - 1)}0]`);
    const stream = new CountingJsonValues(() => new Error('too many'));
    const passed: Buffer[] = [];
    let turns = 0;
    let turning = true;
    const turn = () => {
      turns++;
      if (turning) setImmediate(turn);
    };
    setImmediate(turn);
    stream.on('data', (bytes: Buffer) => passed.push(bytes));
    stream.end(chunk);
    await once(stream, 'end');
    turning = false;
    expect(Buffer.concat(passed).equals(chunk)).toBe(true);
    expect(stream.receivedBytes).toBe(chunk.length);
    // Other callbacks got a turn between the slices: one read is at least four turns of theirs.
    expect(turns).toBeGreaterThanOrEqual(Math.max(4, chunk.length / COUNT_SLICE_BYTES - 1));

    // One over the budget fails the stream, however the slices fall.
    const over = new CountingJsonValues(() => new Error('too many'));
    over.resume();
    over.end(Buffer.from(`[${'0,'.repeat(MAX_JSON_VALUES)}0]`));
    await expect(once(over, 'end')).rejects.toThrow('too many');
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
