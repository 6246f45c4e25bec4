import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_TYPES } from '../../src/domain/incident/index.ts';
import { PROJECTION_NAMES } from '../../projections/index.ts';
import { signToken } from '../../src/http/tokens.ts';
import { freshOrg, startTestApp, type TestApp, type TokenClaims } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';

/**
 * Hostile input on every route of API.md, through `app.inject`. Whatever arrives, the service answers
 * below 500, every 4xx is a problem+json whose `status` is the HTTP status, no body leaks a stack or a
 * path of ours, and a refused request leaves the event store exactly as it was.
 *
 * Reproduce a failure with FUZZ_SEED=<seed> (fast-check prints it); FUZZ_SCALE=4 runs four times as many
 * cases; FUZZ_COLLECT=1 keeps going after a failure and lists every distinct one at the end.
 */

/** Cases per property are multiplied by FUZZ_SCALE; a PostgreSQL server answers about twice as fast as in-memory PGlite, so it gets twice as many. */
const USER_SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const SCALE = USER_SCALE * (process.env.DATABASE_URL ? 2 : 1);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
/** FUZZ_COLLECT=1: do not stop at the first failure; list every distinct one at the end (exploration, not CI). */
const COLLECT = process.env.FUZZ_COLLECT === '1';
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
/**
 * Each property stops generating after its time budget (shrinking included): on a loaded machine it
 * runs fewer cases rather than longer, so the file stays around 30 s whatever the database.
 */
const assertOptions = (
  numRuns: number,
  budgetMs: number,
): { numRuns: number; interruptAfterTimeLimit: number; seed?: number } => ({
  numRuns: runs(numRuns),
  interruptAfterTimeLimit: budgetMs * USER_SCALE,
  ...(SEED === undefined ? {} : { seed: SEED }),
});
/** No request may take longer than this: a hang is a failure, not a slow test. */
const REQUEST_DEADLINE_MS = 15_000;

const ROLES = ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER', 'MEMBER', 'AUDITOR'];
/** API.md's error table: the only 4xx statuses, each with its code. */
const CODE_OF_STATUS: Record<number, string> = {
  400: 'VALIDATION_FAILED',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'INVALID_TRANSITION',
  412: 'VERSION_CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'IDEMPOTENCY_KEY_REUSED',
  429: 'RATE_LIMITED',
};
/** What must never reach a client: a stack frame, our source tree, our dependencies. */
const LEAKS = [
  /\n\s+at\s/,
  /\bat [^\s()]+ \(/,
  /\.(?:ts|js|mjs|cjs):\d+(?::\d+)?/,
  /node_modules/,
  /file:\/\//,
  new RegExp(escapeRegExp(process.cwd())),
  /\/src\/(?:http|app|commands|db|eventstore|readmodel)\//,
];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---- requests ---------------------------------------------------------------------------------

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT' | 'HEAD' | 'OPTIONS';

interface FuzzRequest {
  method: Method;
  url: string;
  headers: Record<string, string>;
  /** Always sent as text: what a client puts on the wire, JSON or not. */
  payload?: string;
}

function describeRequest(request: FuzzRequest): string {
  const clip = (text: string, max = 400) =>
    text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
  const headers = Object.entries(request.headers).map(
    ([name, value]) => `${name}: ${clip(JSON.stringify(value), 120)}`,
  );
  return [
    `${request.method} ${clip(request.url, 300)}`,
    ...headers,
    request.payload === undefined ? '(no body)' : `body ${clip(JSON.stringify(request.payload))}`,
  ].join('\n  ');
}

/** Percent-encodes the UTF-8 bytes of any text (a lone surrogate becomes U+FFFD, as a client's encoder would send it). */
function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * A header value as Node's HTTP parser hands it over: the UTF-8 bytes read as Latin-1, control
 * characters (which the parser refuses outright) dropped, surrounding blanks trimmed.
 */
function asHeaderValue(text: string): string {
  const allowed = [...Buffer.from(text, 'utf8')].filter(
    (byte) => byte === 0x09 || (byte >= 0x20 && byte !== 0x7f),
  );
  return Buffer.from(allowed).toString('latin1').trim();
}

/** An object whose own keys may be `__proto__` or `constructor`, exactly as JSON.parse builds it. */
function objectOf(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [key, value] of entries)
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  return object;
}

function nestedText(depth: number, kind: 'object' | 'array'): string {
  return kind === 'object'
    ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
    : `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

// ---- values -----------------------------------------------------------------------------------

const nastyText = fc.constantFrom(
  '',
  ' ',
  '\t\n',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\ud83d',
  '\u202egnp.exe\u202c',
  'שלום עולם',
  '\u200b',
  '\u200d\u200c\ufeff',
  '👩‍👩‍👧‍👦🔥',
  'Z̷̛̛a̶l̸g̷o̵',
  "' OR '1'='1' --",
  "'; drop table its_events; --",
  '1; select pg_sleep(10)',
  '" OR ""="',
  '\\',
  '%',
  '%00',
  '%25',
  '_',
  '{"$gt": ""}',
  '$where',
  '{"$ne": null}',
  '../../../../etc/passwd',
  '..\\..\\windows\\win.ini',
  '%2e%2e%2f%2e%2e%2f',
  '${jndi:ldap://x/a}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'NaN',
  'Infinity',
  '-1',
  '1e309',
  '0x1F',
  'null',
  'true',
  '[]',
  '{}',
  'SEV1',
  'OPEN',
  'RESOLVED',
  'inc_',
  'inc_00000000000000000000000000000000',
);
const loneSurrogates = fc.string({
  unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code)),
  minLength: 1,
  maxLength: 4,
});
/** Up to ~100 KB of one repeated piece (ASCII, accented, astral, zero-width, NUL). */
const hugeText = fc
  .tuple(
    fc.integer({ min: 1_000, max: 100_000 }),
    fc.constantFrom('x', 'é', '😀', '\u200b', 'a\u0000', 'ab '),
  )
  .map(([length, piece]) => piece.repeat(Math.ceil(length / piece.length)).slice(0, length));
const anyText = fc.oneof(
  { weight: 4, arbitrary: nastyText },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: loneSurrogates },
  { weight: 1, arbitrary: hugeText },
);

/** Times a schema might accept, and the edges of what PostgreSQL's timestamptz holds. */
const timeText = fc.oneof(
  fc
    .date({
      min: new Date('0000-01-01T00:00:00Z'),
      max: new Date('9999-12-31T23:59:59.999Z'),
      noInvalidDate: true,
    })
    .map((date) => date.toISOString()),
  fc.constantFrom(
    '2024-05-01T10:00:00Z',
    '2024-05-01T10:00:00.123456789+02:00',
    '0000-01-01T00:00:00Z',
    '0001-01-01T00:00:00-14:00',
    '9999-12-31T23:59:59+14:00',
    '9999-12-31T23:59:59-14:00',
    '+275760-09-13T00:00:00.000Z',
    '-000001-01-01T00:00:00.000Z',
    '2024-02-30T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '2024-01-01',
    '2024-01-01T00:00:00',
    'now',
    '1714557600',
  ),
);
const numberValue = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, -1, 0.5, 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER + 2, 2 ** 31, 2 ** 63, 1e21),
);
const scalarValue = fc.oneof(anyText, numberValue, fc.boolean(), fc.constant(null), timeText);
const keyText = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', '$where', '', 'a.b', '\u0000'),
  },
);
const { jsonish } = fc.letrec<{ jsonish: unknown }>((tie) => ({
  jsonish: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarValue,
    fc.array(tie('jsonish'), { maxLength: 4 }),
    fc.array(fc.tuple(keyText, tie('jsonish')), { maxLength: 4 }).map(objectOf),
  ),
}));
/** `{"__proto__": {...}}` and friends, as own keys. */
const pollutingValue = fc.constantFrom(
  objectOf([['__proto__', { polluted: 'yes' }]]),
  objectOf([['constructor', { prototype: { polluted: 'yes' } }]]),
  objectOf([
    ['__proto__', { isAdmin: true, polluted: 'yes' }],
    ['title', 'x'],
  ]),
);
const anyValue = fc.oneof({ weight: 6, arbitrary: jsonish }, { weight: 1, arbitrary: pollutingValue });

// ---- routes -----------------------------------------------------------------------------------

interface Fixture {
  org: string;
  otherOrg: string;
  incidentIds: string[];
  foreignIncidentId: string;
  cursor: string;
  otherSortCursor: string;
  position: string;
}

interface BodySpec {
  base: Record<string, unknown>;
  /** Plausible values per field, mixed with hostile ones, so generated bodies reach the command handler. */
  fields: Record<string, fc.Arbitrary<unknown>>;
}

interface RouteSpec {
  name: string;
  method: Method;
  /** `:orgId`, `:incidentId`, `:tag`, `:name` are filled per request. */
  path: string;
  body?: BodySpec;
  query?: Record<string, fc.Arbitrary<string>>;
  auth: 'org' | 'admin' | 'public';
  write?: boolean;
}

const severity = fc.constantFrom('SEV1', 'SEV2', 'SEV3', 'SEV4');
const status = fc.constantFrom('OPEN', 'INVESTIGATING', 'MITIGATED', 'RESOLVED', 'CANCELLED');
const tagText = fc.oneof(
  fc.stringMatching(/^[a-z0-9][a-z0-9:_./-]{0,10}$/),
  fc.constantFrom('latency', 'db', 'a'.repeat(64), 'a'.repeat(65), 'Upper', '-lead'),
);
/** Text a careful client may send and expect back as sent: ASCII, any well-formed Unicode, RTL, zero-width, emoji. */
const plainName = fc.oneof(
  fc.string({ minLength: 1, maxLength: 20 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  fc.constantFrom(
    'payments',
    'checkout',
    'production',
    'שירות תשלומים',
    'a\u200bb',
    '🔥 checkout 🔥',
    'Ωmega\u202eRTL',
    "O'Brien; drop table incidents",
  ),
);
const INCIDENT = '/api/orgs/:orgId/incidents/:incidentId';
const ROUTES: RouteSpec[] = [
  {
    name: 'create',
    method: 'POST',
    path: '/api/orgs/:orgId/incidents',
    auth: 'org',
    write: true,
    body: {
      base: {
        projectId: 'payments',
        title: 'Checkout latency',
        serviceName: 'checkout',
        severity: 'SEV2',
        environment: 'production',
      },
      fields: {
        projectId: plainName,
        title: plainName,
        serviceName: plainName,
        severity,
        environment: plainName,
        detectedBy: plainName,
        description: fc.string({ maxLength: 50 }),
        runbookPath: plainName,
        tags: fc.array(tagText, { maxLength: 60 }),
        initialCorrelationKey: plainName,
      },
    },
  },
  {
    name: 'update',
    method: 'PATCH',
    path: INCIDENT,
    auth: 'org',
    write: true,
    body: {
      base: { title: 'Renamed' },
      fields: {
        title: plainName,
        description: fc.option(fc.string({ maxLength: 50 })),
        serviceName: plainName,
        environment: plainName,
        runbookPath: fc.option(plainName),
        projectId: plainName,
        detectedBy: fc.option(plainName),
      },
    },
  },
  {
    name: 'status',
    method: 'POST',
    path: `${INCIDENT}/status`,
    auth: 'org',
    write: true,
    body: {
      base: { newStatus: 'INVESTIGATING' },
      fields: { newStatus: status, reason: fc.string({ maxLength: 20 }) },
    },
  },
  {
    name: 'severity',
    method: 'POST',
    path: `${INCIDENT}/severity`,
    auth: 'org',
    write: true,
    body: {
      base: { newSeverity: 'SEV3' },
      fields: { newSeverity: severity, reason: fc.string({ maxLength: 20 }) },
    },
  },
  {
    name: 'action',
    method: 'POST',
    path: `${INCIDENT}/actions`,
    auth: 'org',
    write: true,
    body: {
      base: { actionKind: 'NOTE', label: 'Rolled back' },
      fields: {
        actionKind: fc.constantFrom(
          'NOTE',
          'PLAYBOOK',
          'COMMAND',
          'ESCALATION',
          'COMMUNICATION',
          'OTHER',
          'STATUS_CHANGE',
          'TICKET_LINK',
        ),
        label: plainName,
        details: fc.string({ maxLength: 50 }),
      },
    },
  },
  {
    name: 'signal',
    method: 'POST',
    path: `${INCIDENT}/signals`,
    auth: 'org',
    write: true,
    body: {
      base: { signalType: 'ALERT', source: 'prometheus', summary: 'p99 > 2s' },
      fields: {
        signalType: fc.constantFrom('ALERT', 'METRIC', 'LOG', 'TRACE', 'DEPLOYMENT', 'CUSTOM'),
        source: plainName,
        summary: plainName,
        serviceName: plainName,
        environment: plainName,
        correlationKey: plainName,
        traceId: plainName,
        data: fc.oneof(
          fc.dictionary(fc.string({ maxLength: 8 }), jsonish, { maxKeys: 4 }),
          fc.constant(JSON.parse(nestedText(1000, 'object')) as unknown),
        ),
        ts: timeText,
      },
    },
  },
  {
    name: 'add tag',
    method: 'POST',
    path: `${INCIDENT}/tags`,
    auth: 'org',
    write: true,
    body: { base: { tag: 'latency' }, fields: { tag: tagText } },
  },
  { name: 'remove tag', method: 'DELETE', path: `${INCIDENT}/tags/:tag`, auth: 'org', write: true },
  {
    name: 'ticket',
    method: 'POST',
    path: `${INCIDENT}/tickets`,
    auth: 'org',
    write: true,
    body: {
      base: { system: 'JIRA', key: 'OPS-1' },
      fields: {
        system: plainName,
        key: plainName,
        url: fc.oneof(
          fc.webUrl(),
          fc.constantFrom(
            'javascript:alert(1)',
            'http://',
            'file:///etc/passwd',
            'http://[::1',
            'https://x.test/a?b=c#d',
          ),
        ),
      },
    },
  },
  {
    name: 'slo violation',
    method: 'POST',
    path: `${INCIDENT}/slo-violations`,
    auth: 'org',
    write: true,
    body: {
      base: {
        sloId: 'availability',
        windowStart: '2024-05-01T10:00:00Z',
        windowEnd: '2024-05-01T11:00:00Z',
        errorBudgetConsumed: 0.25,
        thresholdBreached: true,
      },
      fields: {
        sloId: plainName,
        windowStart: timeText,
        windowEnd: timeText,
        errorBudgetConsumed: numberValue,
        thresholdBreached: fc.boolean(),
        details: fc.string({ maxLength: 20 }),
      },
    },
  },
  {
    name: 'list',
    method: 'GET',
    path: '/api/orgs/:orgId/incidents',
    auth: 'org',
    query: {
      projectId: plainName,
      environment: plainName,
      serviceName: plainName,
      status: fc.oneof(
        status,
        fc.array(status, { minLength: 1, maxLength: 4 }).map((list) => list.join(',')),
      ),
      severity: fc.oneof(severity, fc.constant('SEV1,,SEV9')),
      tag: tagText,
      correlationKey: plainName,
      q: plainName,
      createdFrom: timeText,
      createdTo: timeText,
      sort: fc.constantFrom('createdAt', 'updatedAt', 'severity', 'title'),
      order: fc.constantFrom('asc', 'desc', 'ASC'),
      limit: fc.constantFrom(
        '1',
        '20',
        '100',
        '0',
        '101',
        '-1',
        '1.5',
        '1e2',
        '0x10',
        '9999999999999999999999',
      ),
    },
  },
  { name: 'details', method: 'GET', path: INCIDENT, auth: 'org' },
  {
    name: 'stream events',
    method: 'GET',
    path: `${INCIDENT}/events`,
    auth: 'org',
    query: {
      fromVersion: fc.constantFrom(
        '0',
        '1',
        '-1',
        '1.5',
        '9007199254740991',
        '9007199254740993',
        '1e400',
        'NaN',
        '',
      ),
      limit: fc.constantFrom('1', '1000', '1001', '0', '-5', 'abc'),
      direction: fc.constantFrom('forwards', 'backwards', 'sideways', ''),
    },
  },
  {
    name: 'org events',
    method: 'GET',
    path: '/api/orgs/:orgId/events',
    auth: 'org',
    query: {
      limit: fc.constantFrom('1', '50', '1000', '1001', '0', 'x'),
      type: fc.oneof(fc.constantFrom(...EVENT_TYPES), fc.constant('INCIDENT_CREATED,BOGUS')),
    },
  },
  { name: 'verify chain', method: 'GET', path: `${INCIDENT}/verify`, auth: 'org' },
  { name: 'projections', method: 'GET', path: '/admin/projections', auth: 'admin' },
  { name: 'rebuild', method: 'POST', path: '/admin/projections/:name/rebuild', auth: 'admin' },
  { name: 'live', method: 'GET', path: '/health/live', auth: 'public' },
  { name: 'ready', method: 'GET', path: '/health/ready', auth: 'public' },
  { name: 'metrics', method: 'GET', path: '/metrics', auth: 'public' },
  { name: 'openapi', method: 'GET', path: '/openapi.json', auth: 'public' },
  { name: 'docs', method: 'GET', path: '/docs', auth: 'public' },
];
const BODY_ROUTES = ROUTES.filter((route) => route.body);
/** Counterexamples name the route: printing its spec would print every arbitrary in it. */
const routeNamed = (name: string): RouteSpec => ROUTES.find((route) => route.name === name)!;
const names = (routes: RouteSpec[]) => routes.map((route) => route.name);
const READ_ROUTES = ROUTES.filter((route) => route.method === 'GET' && route.auth === 'org');
const PROTECTED_ROUTES = ROUTES.filter((route) => route.auth !== 'public');

// ---- the service under test -------------------------------------------------------------------

describe(`API fuzzing on ${databaseLabel}`, () => {
  let t: TestApp;
  let fixture: Fixture;
  /** A token with every role in the fixture org and its_admin: validation, not authorization, decides. */
  let everything: string;
  const stats = { requests: 0, byStatus: new Map<number, number>(), refusedWrites: 0 };
  const findings = new Map<string, string>();

  beforeAll(async () => {
    // Generous rate limit (429s are not what this file looks for) and a short consistency wait, so
    // a write that cannot be projected costs 1 s, not 5.
    t = await startTestApp({ env: { RATE_LIMIT_PER_MINUTE: '10000000', CONSISTENCY_TIMEOUT_MS: '1000' } });
    const org = freshOrg('fuzz');
    const otherOrg = freshOrg('elsewhere');
    everything = t.token({ sub: 'fuzzer', orgs: { [org]: ROLES, [otherOrg]: ROLES }, its_admin: true });
    const create = async (orgId: string, title: string) => {
      const response = await t.request({
        method: 'POST',
        url: `/api/orgs/${orgId}/incidents`,
        token: everything,
        payload: {
          projectId: 'payments',
          title,
          serviceName: 'checkout',
          severity: 'SEV2',
          environment: 'production',
          tags: ['latency'],
        },
      });
      expect(response.statusCode, response.body).toBe(201);
      return response.json<{ incidentId: string; position: string }>();
    };
    const incidents = [await create(org, 'first'), await create(org, 'second'), await create(org, 'third')];
    const foreign = await create(otherOrg, 'not yours');
    const page = async (sort: string) => {
      const response = await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/incidents?limit=1&sort=${sort}`,
        token: everything,
      });
      const { nextCursor } = response.json<{ nextCursor: string | null }>();
      if (!nextCursor) throw new Error(`no cursor from ${response.body}`);
      return nextCursor;
    };
    fixture = {
      org,
      otherOrg,
      incidentIds: incidents.map((incident) => incident.incidentId),
      foreignIncidentId: foreign.incidentId,
      cursor: await page('createdAt'),
      otherSortCursor: await page('severity'),
      position: incidents[1]!.position,
    };
  });

  afterAll(async () => {
    if (stats.requests > 0) {
      const statuses = [...stats.byStatus]
        .sort(([a], [b]) => a - b)
        .map(([code, count]) => `${code}×${count}`);
      console.info(
        `API fuzzing: ${stats.requests} requests (${statuses.join(', ')}); ${stats.refusedWrites} refused writes left the event store untouched`,
      );
    }
    if (COLLECT) {
      console.info(
        `API fuzzing found ${findings.size} distinct problems:\n\n${[...findings].map(([key, detail]) => `* ${key}\n  ${detail.slice(0, 1500)}`).join('\n\n')}`,
      );
    }
    await t?.cleanup();
  });

  /**
   * What the log holds now. On PostgreSQL straight from its_events (the port's global reads wait
   * for older transactions anywhere on the server); on EventStoreDB the head, which every append moves.
   */
  async function storeMark(): Promise<string> {
    if (t.runtime.store.kind === 'eventstoredb') return `head ${await t.runtime.store.headPosition()}`;
    const { rows } = await sql<{ count: string; maxSeq: string | null; head: string | null }>`
      select count(*)::text as "count", max(global_seq)::text as "maxSeq",
             (select tx_id::text || '-' || global_seq::text from its_events order by tx_id desc, global_seq desc limit 1) as "head"
        from its_events`.execute(t.runtime.database.db);
    const row = rows[0]!;
    return `${row.count} events, max global_seq ${row.maxSeq}, head ${row.head}`;
  }

  async function send(request: FuzzRequest): Promise<LightMyRequestResponse> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${REQUEST_DEADLINE_MS} ms:\n  ${describeRequest(request)}`)),
        REQUEST_DEADLINE_MS,
      );
    });
    try {
      return await Promise.race([
        t.app.inject({
          method: request.method,
          url: request.url,
          headers: request.headers,
          ...(request.payload === undefined ? {} : { payload: request.payload }),
        }),
        deadline,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends one request and checks every property that holds whatever the request was. */
  /**
   * Runs checks; with FUZZ_COLLECT=1 a failing check is recorded (once per route, status and
   * complaint) instead of ending the property, so one run lists every distinct finding.
   */
  async function checked(route: string, status: number, checks: () => void | Promise<void>): Promise<void> {
    try {
      await checks();
    } catch (error) {
      if (!COLLECT) throw error;
      const message = error instanceof Error ? error.message : String(error);
      const key = `${route} → ${status}: ${message.split('\n')[0]}`;
      if (!findings.has(key)) findings.set(key, message);
    }
  }

  async function exercise(route: string, request: FuzzRequest): Promise<LightMyRequestResponse> {
    const before = await storeMark();
    const response = await send(request);
    await checked(route, response.statusCode, () => verify(request, response, before));
    return response;
  }

  async function verify(
    request: FuzzRequest,
    response: LightMyRequestResponse,
    before: string,
  ): Promise<void> {
    const context = `${describeRequest(request)}\n→ ${response.statusCode} ${response.headers['content-type'] ?? ''} ${response.body.slice(0, 500)}`;
    stats.requests++;
    stats.byStatus.set(response.statusCode, (stats.byStatus.get(response.statusCode) ?? 0) + 1);

    expect(response.statusCode, `a 5xx:\n  ${context}`).toBeLessThan(500);
    // Only answers that are ours to word: a 2xx may echo stored data, which may look like anything.
    if (response.statusCode >= 400)
      for (const leak of LEAKS)
        expect(response.body, `the body leaks internals (${leak}):\n  ${context}`).not.toMatch(leak);
    expect(({} as Record<string, unknown>).polluted, 'Object.prototype was polluted').toBeUndefined();

    if (response.statusCode >= 400) {
      expect(response.headers['content-type'], `a 4xx that is not problem+json:\n  ${context}`).toMatch(
        /^application\/problem\+json/,
      );
      expect(Object.keys(CODE_OF_STATUS), `a 4xx status API.md does not list:\n  ${context}`).toContain(
        String(response.statusCode),
      );
      if (request.method !== 'HEAD') {
        let problem: Record<string, unknown> = {};
        expect(
          () => (problem = response.json<Record<string, unknown>>()),
          `the problem is not JSON:\n  ${context}`,
        ).not.toThrow();
        expect(problem, `a malformed problem:\n  ${context}`).toMatchObject({
          type: expect.any(String),
          title: expect.any(String),
          detail: expect.any(String),
          status: response.statusCode,
          code: CODE_OF_STATUS[response.statusCode],
        });
      }
      if (response.statusCode === 429) expect(response.headers['retry-after'], context).toBeDefined();
      const after = await storeMark();
      expect(after, `a refused request changed the event store:\n  ${context}`).toBe(before);
      if (request.method !== 'GET' && request.method !== 'HEAD') stats.refusedWrites++;
    } else if (
      request.method !== 'HEAD' &&
      /^application\/json/.test(String(response.headers['content-type']))
    ) {
      expect(() => response.json(), `a 2xx whose JSON does not parse:\n  ${context}`).not.toThrow();
    }
  }

  // ---- generators that need the fixture ----

  const orgSegment = () =>
    fc.oneof(
      { weight: 8, arbitrary: fc.constant(fixture.org) },
      { weight: 1, arbitrary: fc.constant(fixture.otherOrg) },
      {
        weight: 1,
        arbitrary: fc.constantFrom('unknown-org', 'a'.repeat(64), 'a'.repeat(65), 'org.with.dots'),
      },
    );
  const incidentSegment = () =>
    fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...fixture.incidentIds) },
      { weight: 1, arbitrary: fc.constant(fixture.foreignIncidentId) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          `inc_${randomUUID().replaceAll('-', '')}`,
          'inc_',
          `inc_${'a'.repeat(61)}`,
          'INC_1',
        ),
      },
    );
  /** Anything in a path segment: encoded hostile text, or raw oddities a client may put there. */
  const hostileSegment = fc.oneof(
    { weight: 3, arbitrary: anyText.map(percentEncode) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        '..',
        '.',
        '%2e%2e',
        '%2F',
        '%2f..%2f',
        '%00',
        '%zz',
        '%',
        '%E0%A4%A',
        '%ED%A0%80',
        '%FF',
        '%C0%AF',
        '',
        ';',
        '*',
        '~',
        '%20',
        '+',
        "'",
        '"',
        '$',
        '%5Cu0000',
      ),
    },
  );

  function pathFor(
    route: RouteSpec,
    segments: { orgId: string; incidentId: string; tag: string; name: string },
  ): string {
    return route.path
      .replace(':orgId', segments.orgId)
      .replace(':incidentId', segments.incidentId)
      .replace(':tag', segments.tag)
      .replace(':name', segments.name);
  }

  const validSegments = () =>
    fc.record({
      orgId: orgSegment(),
      incidentId: incidentSegment(),
      tag: tagText.map(percentEncode),
      name: fc.oneof(
        { weight: 9, arbitrary: anyText.map(percentEncode) },
        { weight: 1, arbitrary: fc.constantFrom(...PROJECTION_NAMES) },
      ),
    });

  const queryPairs = (route: RouteSpec) => {
    const known = Object.entries(route.query ?? {});
    const pair = fc.oneof(
      ...(known.length
        ? [
            {
              weight: 4,
              arbitrary: fc
                .constantFrom(...known)
                .chain(([key, value]) =>
                  fc.tuple(
                    fc.constant(key),
                    fc.oneof({ weight: 2, arbitrary: value }, { weight: 1, arbitrary: anyText }),
                  ),
                ),
            },
          ]
        : []),
      {
        weight: 1,
        arbitrary: fc.tuple(
          fc.constantFrom(
            '__proto__',
            'constructor',
            'limit[]',
            'status[$ne]',
            'cursor',
            'fromPosition',
            'x',
          ),
          anyText,
        ),
      },
    );
    return fc.array(pair, { maxLength: 4 });
  };
  const queryString = (pairs: [string, string][]) =>
    pairs.length
      ? `?${pairs.map(([key, value]) => `${percentEncode(key)}=${percentEncode(value)}`).join('&')}`
      : '';

  /** A real cursor or position, tampered with in the ways a client might. */
  const tamperedCursor = () =>
    fc.oneof(
      fc.constant(fixture.cursor),
      fc.constant(fixture.otherSortCursor),
      fc.integer({ min: 0, max: 200 }).chain((index) =>
        fc.constantFrom('A', '_', '-', '.', '=').map((char) => {
          const at = index % fixture.cursor.length;
          return (
            fixture.cursor.slice(0, at) +
            (fixture.cursor[at] === char ? 'B' : char) +
            fixture.cursor.slice(at + 1)
          );
        }),
      ),
      fc.constant(fixture.cursor.split('.')[0]!),
      fc.constant(`${fixture.cursor}.`),
      fc.constant(`.${fixture.cursor}`),
      fc.constant(
        `${Buffer.from(JSON.stringify({ org: fixture.org, sort: 'createdAt', order: 'desc', after: { ts: "'; drop table incidents; --", id: 'x' } })).toString('base64url')}.${fixture.cursor.split('.')[1]}`,
      ),
      fc.constant(
        `${Buffer.from(JSON.stringify({ org: fixture.otherOrg, sort: 'createdAt', order: 'desc', after: { ts: '2024-01-01T00:00:00.000000Z', id: 'x' } })).toString('base64url')}.${fixture.cursor.split('.')[1]}`,
      ),
      anyText,
    );
  const tamperedPosition = () => {
    const [tx, seq] = fixture.position.split('-');
    return fc.oneof(
      fc.constant(fixture.position),
      fc.constantFrom(
        '0-0',
        `${tx}-${Number(seq) + 1}`,
        `${tx}`,
        `${tx}-${seq}-1`,
        `-${tx}-${seq}`,
        ` ${tx}-${seq}`,
        `${tx}_${seq}`,
        `${tx}-${seq}\u0000`,
        '18446744073709551615-9223372036854775807',
        '18446744073709551616-1',
        `${tx}-9223372036854775808`,
        '99999999999999999999-99999999999999999999',
        '1e3-1',
        'null',
      ),
      anyText,
    );
  };

  const bodyFor = (spec: BodySpec) =>
    fc.oneof(
      // The valid body with some fields set to other plausible values: reaches the command handler and the read models.
      {
        weight: 4,
        arbitrary: fc
          .array(
            fc
              .constantFrom(...Object.keys(spec.fields))
              .chain((field) => fc.tuple(fc.constant(field), spec.fields[field]!)),
            { maxLength: 3 },
          )
          .map((changes) =>
            JSON.stringify(
              objectOf([...new Map<string, unknown>([...Object.entries(spec.base), ...changes])]),
            ),
          ),
      },
      // The valid body with a few fields replaced, removed or added: reaches the deepest checks.
      {
        weight: 6,
        arbitrary: fc
          .array(
            fc.oneof(
              {
                weight: 3,
                arbitrary: fc
                  .constantFrom(...Object.keys(spec.fields))
                  .chain((field) =>
                    fc.tuple(
                      fc.constant(field),
                      fc.oneof(
                        { weight: 3, arbitrary: spec.fields[field]! },
                        { weight: 2, arbitrary: anyValue },
                      ),
                    ),
                  ),
              },
              {
                weight: 1,
                arbitrary: fc.tuple(fc.constantFrom(...Object.keys(spec.base)), fc.constant(undefined)),
              },
              { weight: 1, arbitrary: fc.tuple(keyText, anyValue) },
            ),
            { maxLength: 4 },
          )
          .map((changes) => {
            const entries = new Map<string, unknown>(Object.entries(spec.base));
            for (const [field, value] of changes) {
              if (value === undefined) entries.delete(field);
              else entries.set(field, value);
            }
            return JSON.stringify(objectOf([...entries]));
          }),
      },
      // Another JSON value altogether.
      { weight: 1, arbitrary: anyValue.map((value) => JSON.stringify(value) ?? 'null') },
      // Not JSON, or barely.
      {
        weight: 1,
        arbitrary: fc.oneof(
          fc.constantFrom(
            '',
            '{',
            '{"title":',
            '{"a":1,}',
            "{'a':1}",
            'nul',
            'NaN',
            '\u0000',
            '\ufeff{}',
            '{"a":"\\ud800"}',
            '{"a":"\\u0000"}',
            '[1,2',
            '{"__proto__":{"polluted":"yes"}}',
            '{"constructor":{"prototype":{"polluted":"yes"}}}',
          ),
          fc.constantFrom(1000, 10_000).map((depth) => nestedText(depth, 'array')),
          fc.constantFrom(1000, 10_000).map((depth) => nestedText(depth, 'object')),
          anyText,
        ),
      },
    );

  const contentType = fc.oneof(
    { weight: 8, arbitrary: fc.constant('application/json') },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'application/merge-patch+json',
        'application/problem+json',
        'application/json; charset=utf-16',
        'application/json;;;',
        'text/plain',
        'text/html',
        'application/xml',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/octet-stream',
        'json',
        '*/*',
        '',
      ),
    },
    { weight: 1, arbitrary: anyText.map(asHeaderValue) },
  );
  const ifMatch = fc.constantFrom(
    '"0"',
    '"1"',
    '"2"',
    '0',
    '*',
    'W/"0"',
    '"-1"',
    '"1.0"',
    '"999999999"',
    '"9999999999"',
    '""',
    '"0", "1"',
    'x'.repeat(10_000),
  );
  const idempotencyKey = fc.oneof(
    fc.uuid(),
    fc.constantFrom('', 'k', 'a'.repeat(255), 'a'.repeat(256), 'x'.repeat(10_000), 'same-key-for-everything'),
    anyText.map(asHeaderValue),
  );
  const prefer = fc.constantFrom(
    'respond-async',
    'respond-async, wait=1',
    'RESPOND-ASYNC',
    'return=minimal',
    'respond-async;;',
    'handling=lenient',
    '',
  );
  const authorizationVariant = () =>
    fc.constantFrom(
      `Bearer ${everything}`,
      `bearer ${everything}`,
      `Bearer   ${everything}  `,
      `Bearer ${everything}`,
    );

  /** Headers of a request that mostly authenticates, with the write headers fuzzed. */
  const headersFor = (withBody: boolean) =>
    fc.oneof(
      fc.constant<Record<string, string>>({
        authorization: `Bearer ${everything}`,
        prefer: 'respond-async',
        ...(withBody ? { 'content-type': 'application/json' } : {}),
      }),
      fuzzedHeaders(withBody),
    );
  const fuzzedHeaders = (withBody: boolean) =>
    fc
      .record(
        {
          authorization: authorizationVariant(),
          'content-type': contentType,
          'if-match': fc.oneof(ifMatch, anyText.map(asHeaderValue)),
          'idempotency-key': idempotencyKey,
          prefer: fc.oneof(
            { weight: 3, arbitrary: fc.constant('respond-async') },
            { weight: 1, arbitrary: prefer },
          ),
          'x-request-id': fc.oneof(fc.uuid(), anyText.map(asHeaderValue)),
          accept: fc.constantFrom('application/json', 'text/html', '*/*', 'application/xml', ''),
        },
        { requiredKeys: ['authorization'] },
      )
      .map((headers) => {
        const out: Record<string, string> = {};
        for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = value;
        if (withBody && out['content-type'] === undefined) out['content-type'] = 'application/json';
        if (!withBody) delete out['content-type'];
        return out;
      });

  // ---- properties ----

  it('writes with generated bodies and headers: never a 5xx, problems only, nothing appended when refused', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(...names(BODY_ROUTES))
          .chain((name) =>
            fc.tuple(fc.constant(name), validSegments(), bodyFor(routeNamed(name).body!), headersFor(true)),
          ),
        async ([name, segments, payload, headers]) => {
          const route = routeNamed(name);
          const response = await exercise(route.name, {
            method: route.method,
            url: pathFor(route, segments),
            headers,
            payload,
          });
          // What was accepted reads back as it was sent (trimmed): no mangled Unicode, no lost characters.
          if (route.name === 'create' && (response.statusCode === 201 || response.statusCode === 202)) {
            const sent = JSON.parse(payload) as { title: string };
            const { incidentId, position } = response.json<{ incidentId: string; position: string }>();
            if (response.statusCode === 202) await t.runtime.progress.waitFor(position, 5_000);
            const read = await send({
              method: 'GET',
              url: `/api/orgs/${segments.orgId}/incidents/${incidentId}`,
              headers: { authorization: `Bearer ${everything}` },
            });
            await checked(route.name, read.statusCode, () =>
              expect(
                read.json<{ incident: { title: string } }>().incident.title,
                `title read back:\n  ${read.body.slice(0, 300)}`,
              ).toBe(sent.title.trim()),
            );
          }
        },
      ),
      assertOptions(260, 7_000),
    );
  }, 60_000);

  it('reads with generated queries, tampered cursors and positions', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(...names(READ_ROUTES))
          .chain((name) =>
            fc.tuple(
              fc.constant(name),
              validSegments(),
              queryPairs(routeNamed(name)),
              name === 'list' ? fc.option(tamperedCursor(), { freq: 2 }) : fc.constant(null),
              name === 'org events' ? fc.option(tamperedPosition(), { freq: 2 }) : fc.constant(null),
              headersFor(false),
            ),
          ),
        async ([name, segments, pairs, cursor, position, headers]) => {
          const route = routeNamed(name);
          const all: [string, string][] = [
            ...pairs,
            ...(cursor === null ? [] : [['cursor', cursor] as [string, string]]),
            ...(position === null ? [] : [['fromPosition', position] as [string, string]]),
          ];
          const response = await exercise(route.name, {
            method: 'GET',
            url: `${pathFor(route, segments)}${queryString(all)}`,
            headers,
          });
          // A cursor or position this API did not issue is refused, never served from somewhere else.
          if (cursor !== null && cursor !== fixture.cursor && cursor !== fixture.otherSortCursor) {
            await checked(route.name, response.statusCode, () =>
              expect(
                response.statusCode,
                `a tampered cursor was accepted: ${JSON.stringify(cursor)}`,
              ).not.toBe(200),
            );
          }
        },
      ),
      assertOptions(180, 5_000),
    );
  }, 60_000);

  it('hostile path segments and methods on every route', async () => {
    const segments = fc.record({
      orgId: fc.oneof(orgSegment(), hostileSegment),
      incidentId: fc.oneof(incidentSegment(), hostileSegment),
      tag: hostileSegment,
      name: hostileSegment,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...names(ROUTES)),
        segments,
        fc.oneof(
          { weight: 4, arbitrary: fc.constant(null) },
          {
            weight: 1,
            arbitrary: fc.constantFrom<Method>('GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS'),
          },
        ),
        fc.option(hostileSegment, { freq: 4 }),
        headersFor(false),
        async (name, values, otherMethod, extra, headers) => {
          const route = routeNamed(name);
          const method = otherMethod ?? route.method;
          const url = `${pathFor(route, values)}${extra === null ? '' : `/${extra}`}`;
          const withBody = route.body !== undefined && method !== 'GET' && method !== 'HEAD';
          await exercise(`${route.name} (${method})`, {
            method,
            url,
            headers: withBody ? { ...headers, 'content-type': 'application/json' } : headers,
            ...(withBody ? { payload: JSON.stringify(route.body!.base) } : {}),
          });
        },
      ),
      assertOptions(170, 5_000),
    );
  }, 60_000);

  it('garbage, forged, expired and unauthorized tokens: 401 or 403, never served', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'mallory', orgs: { [fixture.org]: ROLES }, its_admin: true };
    const unsigned = (header: object, payload: object) =>
      `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.`;
    const bogus = fc.oneof(
      fc.constantFrom(
        '',
        'Bearer',
        'Bearer ',
        'Basic bWFsbG9yeTpwYXNzd29yZA==',
        'Token abc',
        'Bearer null',
        'Bearer undefined',
        'Bearer a.b.c',
        'Bearer ...',
        `Bearer ${unsigned({ alg: 'none', typ: 'JWT' }, claims)}`,
        `Bearer ${unsigned({ alg: 'NONE' }, claims)}`,
        `Bearer ${signToken({ ...claims, iat: now, exp: now + 300 }, 'HS256', 'not-the-secret-of-this-service')}`,
        `Bearer ${t.token({ ...claims, expiresIn: -60 })}`,
        `Bearer ${t.token({ ...claims, nbf: now + 3600 })}`,
        `Bearer ${t.token({ ...claims, sub: 12 } as unknown as TokenClaims)}`,
        `Bearer ${t.token({ ...claims, sub: '' })}`,
        `Bearer ${t.token({ ...claims, orgs: 'everything' } as unknown as TokenClaims)}`,
        `Bearer ${t.token({ ...claims, orgs: { [fixture.org]: 'ORG_ADMIN' } } as unknown as TokenClaims)}`,
        `Bearer ${t.token({ ...claims, orgs: null } as unknown as TokenClaims)}`,
        `Bearer ${t.token({ ...claims, actor_type: 'ROOT' } as unknown as TokenClaims)}`,
        `Bearer ${t.token({ ...claims, its_admin: 'true' } as unknown as TokenClaims)}`,
        `Bearer ${everything}x`,
        `Bearer ${everything.split('.').slice(0, 2).join('.')}`,
        `Bearer ${everything}.${everything}`,
        `Bearer ${'A'.repeat(100_000)}`,
      ),
      anyText.map((text) => asHeaderValue(`Bearer ${text}`)),
      anyText.map(asHeaderValue),
    );
    // Valid tokens that lack the org or the role: 403.
    const powerless = fc.constantFrom(
      { token: t.token({ sub: 'outsider', orgs: { [fixture.otherOrg]: ROLES } }), auditor: false },
      { token: t.token({ sub: 'nobody', orgs: {} }), auditor: false },
      { token: t.token({ sub: 'auditor', orgs: { [fixture.org]: ['AUDITOR'] } }), auditor: true },
      { token: t.token({ sub: 'made-up', orgs: { [fixture.org]: ['ROOT', 'its_admin'] } }), auditor: false },
      {
        token: t.token({
          sub: 'proto',
          orgs: JSON.parse(`{"__proto__": ${JSON.stringify(ROLES)}}`) as Record<string, string[]>,
        }),
        auditor: false,
      },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...names(PROTECTED_ROUTES)),
        fc.record({
          orgId: fc.constant(fixture.org),
          incidentId: fc.constantFrom(...fixture.incidentIds),
          tag: fc.constant('latency'),
          name: fc.constantFrom('nope', ...PROJECTION_NAMES),
        }),
        fc.oneof(
          { weight: 3, arbitrary: bogus.map((header) => ({ kind: 'bogus' as const, header })) },
          {
            weight: 1,
            arbitrary: powerless.map(({ token, auditor }) => ({
              kind: auditor ? ('auditor' as const) : ('powerless' as const),
              header: `Bearer ${token}`,
            })),
          },
        ),
        async (name, segments, auth) => {
          const route = routeNamed(name);
          const withBody = route.body !== undefined;
          const response = await exercise(route.name, {
            method: route.method,
            url: pathFor(route, segments),
            headers: {
              ...(auth.header === '' ? {} : { authorization: auth.header }),
              ...(withBody ? { 'content-type': 'application/json' } : {}),
            },
            ...(withBody ? { payload: JSON.stringify(route.body!.base) } : {}),
          });
          await checked(`${route.name} (${auth.kind} token)`, response.statusCode, () => {
            if (auth.kind === 'bogus') {
              expect(
                response.statusCode,
                `${route.method} ${route.path} with ${JSON.stringify(auth.header.slice(0, 200))}: ${response.body}`,
              ).toBe(401);
            } else if (auth.kind === 'auditor' && route.method === 'GET' && route.auth === 'org') {
              // AUDITOR reads everything in its org, raw events included.
              expect(response.statusCode, `${route.method} ${route.path}: ${response.body}`).toBe(200);
            } else {
              expect(
                response.statusCode,
                `${route.method} ${route.path} with a ${auth.kind} token: ${response.body}`,
              ).toBe(403);
            }
          });
        },
      ),
      assertOptions(150, 3_000),
    );
  }, 60_000);

  it('fixed hostile cases: a body over 1 MiB, 1000-level nesting, prototype keys, wrong content types', async () => {
    const incident = `/api/orgs/${fixture.org}/incidents/${fixture.incidentIds[0]}`;
    const json = { authorization: `Bearer ${everything}`, 'content-type': 'application/json' };
    const cases: { request: FuzzRequest; status?: number }[] = [
      {
        request: {
          method: 'POST',
          url: `/api/orgs/${fixture.org}/incidents`,
          headers: json,
          payload: JSON.stringify({
            projectId: 'p',
            title: 't',
            serviceName: 's',
            severity: 'SEV1',
            environment: 'e',
            description: 'x'.repeat(1_100_000),
          }),
        },
        status: 413,
      },
      {
        request: {
          method: 'POST',
          url: `${incident}/actions`,
          headers: json,
          payload: 'y'.repeat(1024 * 1024 + 1),
        },
        status: 413,
      },
      {
        request: {
          method: 'POST',
          url: `${incident}/actions`,
          headers: { ...json, 'content-type': 'text/plain' },
          payload: 'NOTE',
        },
        status: 415,
      },
      {
        request: {
          method: 'POST',
          url: `${incident}/actions`,
          headers: { ...json, 'content-type': 'application/xml' },
          payload: '<note/>',
        },
        status: 415,
      },
      {
        request: {
          method: 'POST',
          url: `${incident}/actions`,
          headers: json,
          payload: '{"actionKind":"NOTE",',
        },
        status: 400,
      },
      {
        request: {
          method: 'POST',
          url: `${incident}/actions`,
          headers: json,
          payload: nestedText(1000, 'array'),
        },
        status: 400,
      },
      {
        request: {
          method: 'POST',
          url: `${incident}/signals`,
          headers: { ...json, prefer: 'respond-async' },
          payload: `{"signalType":"ALERT","source":"s","summary":"deep","data":${nestedText(1000, 'object')}}`,
        },
      },
      {
        request: {
          method: 'POST',
          url: `${incident}/signals`,
          headers: { ...json, prefer: 'respond-async' },
          payload: `{"signalType":"ALERT","source":"s","summary":"deeper","data":{"d":${nestedText(1000, 'array')}}}`,
        },
      },
      {
        request: {
          method: 'PATCH',
          url: incident,
          headers: json,
          payload: '{"__proto__":{"polluted":"yes"},"title":"x"}',
        },
        status: 400,
      },
      {
        request: {
          method: 'PATCH',
          url: incident,
          headers: json,
          payload: '{"constructor":{"prototype":{"polluted":"yes"}},"title":"x"}',
        },
        status: 400,
      },
      {
        request: {
          method: 'POST',
          url: `${incident}/status`,
          headers: { ...json, 'if-match': '"999999"' },
          payload: '{"newStatus":"INVESTIGATING"}',
        },
        status: 412,
      },
      {
        request: {
          method: 'POST',
          url: `${incident}/tags`,
          headers: { ...json, 'idempotency-key': 'x'.repeat(256) },
          payload: '{"tag":"a"}',
        },
        status: 400,
      },
      {
        request: {
          method: 'GET',
          url: `/api/orgs/${fixture.org}/incidents?cursor=${encodeURIComponent(fixture.cursor.slice(0, -2))}AA`,
          headers: json,
        },
        status: 400,
      },
      {
        request: {
          method: 'GET',
          url: `/api/orgs/${fixture.org}/incidents?cursor=${encodeURIComponent(fixture.otherSortCursor)}`,
          headers: json,
        },
        status: 400,
      },
      {
        request: {
          method: 'GET',
          url: `/api/orgs/${fixture.org}/events?fromPosition=not-a-position`,
          headers: json,
        },
        status: 400,
      },
      { request: { method: 'GET', url: '/no/such/route', headers: {} }, status: 404 },
    ];
    for (const { request, status: expected } of cases) {
      const response = await exercise(
        `fixed ${request.method} ${request.url.split('?')[0]!.slice(0, 80)}`,
        request,
      );
      if (expected !== undefined) {
        await checked(
          `fixed ${request.method} ${request.url.split('?')[0]!.slice(0, 80)}`,
          response.statusCode,
          () =>
            expect(response.statusCode, `${describeRequest(request)}\n→ ${response.body.slice(0, 300)}`).toBe(
              expected,
            ),
        );
      }
    }
  }, 60_000);

  it('every event the API accepted reaches the read models (no poisoned projection)', async () => {
    const head = await t.runtime.store.headPosition();
    const caughtUp = head === null || (await t.runtime.progress.waitFor(head, 5_000));
    const { rows } = await sql<{
      name: string;
      state: string;
      last_error: string | null;
      error_position: string | null;
      position: string | null;
    }>`
      select name, state, last_error, error_position, position from projection_checkpoints order by name`.execute(
      t.runtime.database.db,
    );
    expect(
      rows.filter((row) => row.state === 'failed' || row.last_error !== null),
      `projections that failed on an accepted event: ${JSON.stringify(rows)}`,
    ).toEqual([]);
    expect(caughtUp, `the projections did not reach ${head} within 5 s: ${JSON.stringify(rows)}`).toBe(true);
  }, 30_000);
});
