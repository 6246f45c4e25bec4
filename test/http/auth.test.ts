import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.ts';
import { signToken } from '../../src/http/tokens.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { expectProblem, validIncident } from './support.ts';

const ROLES = ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER', 'MEMBER', 'AUDITOR'] as const;
type Role = (typeof ROLES)[number];
const ANY: readonly Role[] = ROLES;
const WRITERS: readonly Role[] = ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER', 'MEMBER'];

/** API.md's roles table, written out again here so the test checks the code against the spec. */
interface RouteCase {
  name: string;
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  url: (org: string, incidentId: string) => string;
  payload?: () => Record<string, unknown>;
  allowed: readonly Role[] | 'its_admin';
}

let counter = 0;
const ROUTES: RouteCase[] = [
  { name: 'list', method: 'GET', url: (o) => `/api/orgs/${o}/incidents`, allowed: ANY },
  { name: 'details', method: 'GET', url: (o, i) => `/api/orgs/${o}/incidents/${i}`, allowed: ANY },
  {
    name: 'create',
    method: 'POST',
    url: (o) => `/api/orgs/${o}/incidents`,
    payload: () => validIncident,
    allowed: WRITERS,
  },
  {
    name: 'update',
    method: 'PATCH',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}`,
    payload: () => ({ title: `Title ${++counter}` }),
    allowed: WRITERS,
  },
  {
    name: 'status',
    method: 'POST',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/status`,
    payload: () => ({ newStatus: 'INVESTIGATING' }),
    allowed: ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER'],
  },
  {
    name: 'severity',
    method: 'POST',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/severity`,
    payload: () => ({ newSeverity: 'SEV1' }),
    allowed: ['ORG_ADMIN', 'SRE_LEAD'],
  },
  {
    name: 'add tag',
    method: 'POST',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/tags`,
    payload: () => ({ tag: 'matrix' }),
    allowed: WRITERS,
  },
  {
    name: 'remove tag',
    method: 'DELETE',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/tags/matrix`,
    allowed: WRITERS,
  },
  {
    name: 'ticket',
    method: 'POST',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/tickets`,
    payload: () => ({ system: 'JIRA', key: 'OPS-7' }),
    allowed: WRITERS,
  },
  {
    name: 'action',
    method: 'POST',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/actions`,
    payload: () => ({ actionKind: 'NOTE', label: 'note' }),
    allowed: WRITERS,
  },
  {
    name: 'signal',
    method: 'POST',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/signals`,
    payload: () => ({ signalType: 'LOG', source: 'loki', summary: 'error burst' }),
    allowed: WRITERS,
  },
  {
    name: 'slo violation',
    method: 'POST',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/slo-violations`,
    payload: () => ({
      sloId: 'availability',
      windowStart: '2030-01-01T00:00:00Z',
      windowEnd: '2030-01-01T00:05:00Z',
      errorBudgetConsumed: 0.1,
      thresholdBreached: false,
    }),
    allowed: WRITERS,
  },
  {
    name: 'incident events',
    method: 'GET',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/events`,
    allowed: ['ORG_ADMIN', 'SRE_LEAD', 'AUDITOR'],
  },
  {
    name: 'org events',
    method: 'GET',
    url: (o) => `/api/orgs/${o}/events`,
    allowed: ['ORG_ADMIN', 'SRE_LEAD', 'AUDITOR'],
  },
  {
    name: 'verify chain',
    method: 'GET',
    url: (o, i) => `/api/orgs/${o}/incidents/${i}/verify`,
    allowed: ['ORG_ADMIN', 'SRE_LEAD', 'AUDITOR'],
  },
  { name: 'projections', method: 'GET', url: () => '/admin/projections', allowed: 'its_admin' },
  {
    name: 'rebuild',
    method: 'POST',
    url: () => '/admin/projections/incidents/rebuild',
    allowed: 'its_admin',
  },
];

describe(`authentication and authorization on ${databaseLabel}`, () => {
  let t: TestApp;
  let org: string;
  let incidentId: string;

  beforeAll(async () => {
    t = await startTestApp();
    org = freshOrg();
    const created = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/incidents`,
      token: t.token({ orgs: { [org]: ['ORG_ADMIN'] } }),
      payload: validIncident,
    });
    expect(created.statusCode).toBe(201);
    incidentId = created.json().incidentId;
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const list = (token?: string, headers: Record<string, string> = {}) =>
    t.request({ method: 'GET', url: `/api/orgs/${org}/incidents`, ...(token ? { token } : {}), headers });
  const now = () => Math.floor(Date.now() / 1000);

  it('refuses every kind of bad token with 401 UNAUTHENTICATED', async () => {
    const claims = { sub: 'mallory', orgs: { [org]: ['ORG_ADMIN'] } };
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const cases: [string, Record<string, string>][] = [
      ['no header', {}],
      ['not bearer', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
      ['empty bearer', { authorization: 'Bearer ' }],
      ['garbage', { authorization: 'Bearer not-a-jwt' }],
      [
        'forged',
        {
          authorization: `Bearer ${signToken({ ...claims, exp: now() + 60 }, 'HS256', 'another-secret-of-enough-length')}`,
        },
      ],
      [
        'alg none',
        {
          authorization: `Bearer ${encode({ alg: 'none', typ: 'JWT' })}.${encode({ ...claims, exp: now() + 60 })}.`,
        },
      ],
      ['expired', { authorization: `Bearer ${t.token({ ...claims, expiresIn: -60 })}` }],
      ['not yet valid', { authorization: `Bearer ${t.token({ ...claims, nbf: now() + 600 })}` }],
      [
        'no orgs claim',
        { authorization: `Bearer ${signToken({ sub: 'x', exp: now() + 60 }, 'HS256', t.secret)}` },
      ],
      [
        'no sub',
        { authorization: `Bearer ${signToken({ orgs: claims.orgs, exp: now() + 60 }, 'HS256', t.secret)}` },
      ],
      [
        'tampered payload',
        {
          authorization: `Bearer ${t.token({ sub: 'x', orgs: {} }).replace(/\.[^.]+\./, `.${encode({ ...claims, exp: now() + 60 })}.`)}`,
        },
      ],
    ];
    for (const [label, headers] of cases) {
      const response = await list(undefined, headers);
      expect(response.statusCode, label).toBe(401);
      expectProblem(response, 401, 'UNAUTHENTICATED');
      expect(response.headers['www-authenticate']).toBe('Bearer');
    }
  });

  it('remembers a verified token only until it expires', async () => {
    // Verified tokens are cached (auth.ts): the cache must not outlive the token's exp.
    const exp = now() + 2;
    const token = signToken({ sub: 'soon-gone', orgs: { [org]: ['ORG_ADMIN'] }, exp }, 'HS256', t.secret);
    for (let i = 0; i < 3; i++) expect((await list(token)).statusCode).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, exp * 1000 - Date.now() + 50));
    const expired = await list(token);
    expectProblem(expired, 401, 'UNAUTHENTICATED');
    expect(expired.json().detail).toBe('the token has expired');
  });

  it('refuses a valid token without the org or with too low a role: 403 FORBIDDEN', async () => {
    expectProblem(await list(t.token({ orgs: { [freshOrg()]: ['ORG_ADMIN'] } })), 403, 'FORBIDDEN');
    expectProblem(await list(t.token({ orgs: { [org]: [] } })), 403, 'FORBIDDEN');
    expectProblem(await list(t.token({ orgs: { [org]: ['VIEWER'] } })), 403, 'FORBIDDEN');
    const auditor = t.token({ orgs: { [org]: ['AUDITOR'] } });
    expect((await list(auditor)).statusCode).toBe(200);
    expectProblem(
      await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/incidents`,
        token: auditor,
        payload: validIncident,
      }),
      403,
      'FORBIDDEN',
    );
    // Authorization comes before validation: a forbidden caller learns nothing about the schema.
    expectProblem(
      await t.request({ method: 'POST', url: `/api/orgs/${org}/incidents`, token: auditor, payload: {} }),
      403,
      'FORBIDDEN',
    );
  });

  it('records the token’s actor type and subject on the events', async () => {
    const token = t.token({ sub: 'alertmanager', actor_type: 'INTEGRATION', orgs: { [org]: ['MEMBER'] } });
    const response = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/incidents/${incidentId}/signals`,
      token,
      payload: { signalType: 'ALERT', source: 'am', summary: 'firing' },
    });
    expect(response.statusCode).toBe(200);
    const events = await t.request({
      method: 'GET',
      url: `/api/orgs/${org}/incidents/${incidentId}/events?direction=backwards&limit=1`,
      token: t.token({ orgs: { [org]: ['AUDITOR'] } }),
    });
    expect(events.json().events[0].metadata.actor).toEqual({ type: 'INTEGRATION', ref: 'alertmanager' });
  });

  it('enforces the roles table on every route, for every role, no token, a forged token and another org’s token', async () => {
    const otherOrg = freshOrg('other');
    const principals: [string, string | undefined, (route: RouteCase) => number][] = [
      ...ROLES.map((role): [string, string, (route: RouteCase) => number] => [
        role,
        t.token({ sub: `as-${role}`, orgs: { [org]: [role] } }),
        (route) => (route.allowed !== 'its_admin' && route.allowed.includes(role) ? 200 : 403),
      ]),
      [
        'its_admin',
        t.token({ sub: 'root', orgs: {}, its_admin: true }),
        (route) => (route.allowed === 'its_admin' ? 200 : 403),
      ],
      ['no token', undefined, () => 401],
      [
        'forged',
        signToken(
          { sub: 'x', orgs: { [org]: [...ROLES] }, its_admin: true, exp: now() + 60 },
          'HS256',
          randomBytes(32),
        ),
        () => 401,
      ],
      ['other org', t.token({ sub: 'stranger', orgs: { [otherOrg]: [...ROLES] } }), () => 403],
    ];
    const failures: string[] = [];
    for (const route of ROUTES) {
      for (const [label, token, expected] of principals) {
        const response = await t.request({
          method: route.method,
          url: route.url(org, incidentId),
          ...(token ? { token } : {}),
          ...(route.payload ? { payload: route.payload() } : {}),
          // Writes need not wait for the read models here.
          headers: route.method === 'GET' ? {} : { prefer: 'respond-async' },
        });
        const want = expected(route);
        const got = response.statusCode;
        const ok = want === 200 ? got >= 200 && got < 300 : got === want;
        if (!ok)
          failures.push(
            `${route.name} as ${label}: expected ${want}, got ${got} ${response.body.slice(0, 160)}`,
          );
      }
    }
    expect(failures).toEqual([]);
  });

  it('keeps the Authorization header out of the logs', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const app = buildApp(t.runtime, { logger: { level: 'trace', stream } });
    const token = t.token({ orgs: { [org]: ['MEMBER'] } });
    try {
      await app.inject({
        method: 'GET',
        url: `/api/orgs/${org}/incidents`,
        headers: { authorization: `Bearer ${token}` },
      });
      await app.inject({
        method: 'GET',
        url: `/api/orgs/${org}/incidents`,
        headers: { authorization: 'Bearer forged.token.value' },
      });
    } finally {
      await app.close();
    }
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('')).not.toContain(token.split('.')[2]);
    expect(lines.join('')).not.toContain('forged.token.value');
    expect(lines.some((line) => line.includes('"requestId"'))).toBe(true);
  });

  it('limits requests per token: 429 RATE_LIMITED with Retry-After, other tokens unaffected', async () => {
    const limited = await startTestApp({
      shareDatabaseOf: t,
      workers: false,
      env: { RATE_LIMIT_PER_MINUTE: '3' },
    });
    try {
      const token = limited.token({ sub: 'busy', orgs: { [org]: ['MEMBER'] } });
      for (let i = 0; i < 3; i++) {
        expect(
          (await limited.request({ method: 'GET', url: `/api/orgs/${org}/incidents`, token })).statusCode,
        ).toBe(200);
      }
      const refused = await limited.request({ method: 'GET', url: `/api/orgs/${org}/incidents`, token });
      expectProblem(refused, 429, 'RATE_LIMITED');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      const other = limited.token({ sub: 'calm', orgs: { [org]: ['MEMBER'] } });
      expect(
        (await limited.request({ method: 'GET', url: `/api/orgs/${org}/incidents`, token: other }))
          .statusCode,
      ).toBe(200);
      expect((await limited.request({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    } finally {
      await limited.cleanup();
    }
  });

  describe('with a public key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = (key: typeof rsa.publicKey) => key.export({ type: 'spki', format: 'pem' }).toString();
    const claims = () => ({ sub: 'svc', orgs: { [org]: ['AUDITOR'] }, exp: now() + 60 });

    it('accepts RS256 tokens of that key only, with the configured issuer and audience', async () => {
      const app = await startTestApp({
        shareDatabaseOf: t,
        workers: false,
        env: {
          JWT_SECRET: '',
          JWT_PUBLIC_KEY: pem(rsa.publicKey),
          JWT_ISSUER: 'https://idp.example',
          JWT_AUDIENCE: 'its',
        },
      });
      try {
        const get = (token: string) =>
          app.request({ method: 'GET', url: `/api/orgs/${org}/incidents`, token });
        const good = { ...claims(), iss: 'https://idp.example', aud: 'its' };
        expect((await get(signToken(good, 'RS256', rsa.privateKey))).statusCode).toBe(200);
        // HS256 keyed with the public key text: the classic algorithm-confusion forgery.
        expectProblem(await get(signToken(good, 'HS256', pem(rsa.publicKey))), 401, 'UNAUTHENTICATED');
        expectProblem(await get(signToken(good, 'ES256', ec.privateKey)), 401, 'UNAUTHENTICATED');
        expectProblem(
          await get(signToken(good, 'RS256', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)),
          401,
          'UNAUTHENTICATED',
        );
        expectProblem(
          await get(signToken({ ...good, iss: 'https://evil.example' }, 'RS256', rsa.privateKey)),
          401,
          'UNAUTHENTICATED',
        );
        expectProblem(
          await get(signToken({ ...good, aud: 'someone-else' }, 'RS256', rsa.privateKey)),
          401,
          'UNAUTHENTICATED',
        );
        expectProblem(await get(signToken(claims(), 'RS256', rsa.privateKey)), 401, 'UNAUTHENTICATED');
      } finally {
        await app.cleanup();
      }
    });

    it('accepts ES256 tokens of that key only', async () => {
      const app = await startTestApp({
        shareDatabaseOf: t,
        workers: false,
        env: { JWT_SECRET: '', JWT_PUBLIC_KEY: pem(ec.publicKey) },
      });
      try {
        const get = (token: string) =>
          app.request({ method: 'GET', url: `/api/orgs/${org}/incidents`, token });
        expect((await get(signToken(claims(), 'ES256', ec.privateKey))).statusCode).toBe(200);
        expectProblem(await get(signToken(claims(), 'RS256', rsa.privateKey)), 401, 'UNAUTHENTICATED');
        expectProblem(await get(signToken(claims(), 'HS256', pem(ec.publicKey))), 401, 'UNAUTHENTICATED');
        expectProblem(
          await get(signToken({ ...claims(), exp: now() - 5 }, 'ES256', ec.privateKey)),
          401,
          'UNAUTHENTICATED',
        );
      } finally {
        await app.cleanup();
      }
    });
  });
});
