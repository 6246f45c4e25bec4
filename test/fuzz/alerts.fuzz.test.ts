import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { alertmanagerNotification, grafanaNotification } from '../ingest/payloads.ts';

/**
 * Hostile bodies on the three ingestion routes: valid payloads with any part replaced by anything
 * (wrong types, huge or unstorable strings, prototype keys), and arbitrary JSON or text. The answer
 * is never a 5xx, a 4xx is problem+json, and a refused body appends nothing to any stream.
 * FUZZ_SEED=<seed> reproduces a failure; FUZZ_SCALE multiplies the cases.
 */

const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const options = (numRuns: number) => ({
  numRuns: Math.round(numRuns * SCALE),
  interruptAfterTimeLimit: 20_000 * SCALE,
  ...(SEED === undefined ? {} : { seed: SEED }),
});

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const valid = {
  alertmanager: () =>
    alertmanagerNotification(`g-${Math.random()}`, [{ fingerprint: 'a1' }, { fingerprint: 'a2' }]),
  grafana: () => grafanaNotification(`g-${Math.random()}`, [{ fingerprint: 'g1' }]),
  events: () => ({
    event_action: 'trigger',
    dedup_key: `k-${Math.random()}`,
    payload: { summary: 'disk full', source: 'db-1', severity: 'critical', custom_details: { a: 1 } },
    links: [{ href: 'https://x' }],
  }),
} as const;
type Route = keyof typeof valid;

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({ maxDepth: 3 }),
  fc.string({ unit: 'binary', maxLength: 50 }),
  fc.constantFrom(
    '\u0000',
    '\uD800',
    'x'.repeat(70_000),
    '0001-01-01T00:00:00Z',
    '9999-99-99T99:99:99Z',
    -1,
    1e308,
  ),
  fc.constantFrom({ __proto__: { polluted: true } }, { constructor: { prototype: {} } }, [], {}),
);

/** Every path into a JSON value, so a mutation can hit any field. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  const here = prefix.length ? [prefix] : [];
  if (Array.isArray(value))
    return [...here, ...value.flatMap((item, index) => paths(item, [...prefix, index]))];
  if (value !== null && typeof value === 'object')
    return [...here, ...Object.entries(value).flatMap(([key, item]) => paths(item, [...prefix, key]))];
  return here;
}

function replaceAt(value: Json, path: (string | number)[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<
    string | number,
    Json
  >;
  copy[head!] = replaceAt(copy[head!]!, rest, replacement) as Json;
  return copy;
}

const mutated = (route: Route) =>
  fc
    .record({ pick: fc.nat(), replacement: hostileValue, drop: fc.boolean() })
    .map(({ pick, replacement, drop }) => {
      const body = valid[route]() as unknown as Json;
      const all = paths(body);
      const path = all[pick % all.length]!;
      return JSON.stringify(drop ? replaceAt(body, path, undefined) : replaceAt(body, path, replacement));
    });

const wholeBody = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 200 }),
  fc.constantFrom('', '{', '[]', 'null', '{"version":"4"}', '{"event_action":"trigger"}'),
);

describe(`fuzzing the ingestion routes on ${databaseLabel}`, () => {
  let t: TestApp;
  let org: string;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_PER_MINUTE: '100000000' } });
    org = freshOrg('fuzz');
    token = t.token({ sub: 'fuzzer', orgs: { [org]: ['MEMBER'] }, expiresIn: 3600 });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  async function check(route: Route, payload: string): Promise<void> {
    const before = await t.runtime.store.headPosition();
    const response = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/alerts/${route}`,
      token,
      headers: { 'content-type': 'application/json' },
      payload,
    });
    const context = `${route} ${payload.slice(0, 300)} → ${response.statusCode} ${response.body.slice(0, 300)}`;
    expect(response.statusCode, context).toBeLessThan(500);
    expect(response.statusCode, context).not.toBe(429);
    if (response.statusCode >= 400) {
      expect(response.headers['content-type'], context).toMatch(/^application\/problem\+json/);
      expect(response.json<{ status: number }>().status, context).toBe(response.statusCode);
      expect(await t.runtime.store.headPosition(), `${context}: appended for a refused body`).toBe(before);
    }
  }

  for (const route of Object.keys(valid) as Route[]) {
    it(`${route}: a valid payload with any one part made hostile`, async () => {
      await fc.assert(
        fc.asyncProperty(mutated(route), (payload) => check(route, payload)),
        options(60),
      );
    });
    it(`${route}: arbitrary bodies`, async () => {
      await fc.assert(
        fc.asyncProperty(wholeBody, (payload) => check(route, payload)),
        options(30),
      );
    });
  }
});
