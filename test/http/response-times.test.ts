import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IncidentCommands, type CommandContext } from '../../src/commands/index.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { seededRandom } from '../projections/fixtures.ts';
import { expectProblem } from './support.ts';

/** What the test made happen to one incident, and so what the statistics must say of it. */
interface Generated {
  createdAt: number;
  service: string;
  severity: string;
  project: string;
  environment: string;
  acknowledgedAt: number | null;
  /** The last resolution, when the incident is resolved now. */
  resolvedAt: number | null;
  cancelled: boolean;
}

const HOUR = 3_600_000;
const START = Date.parse('2026-03-02T00:00:00.000Z'); // a Monday

/** Linear interpolation between the two nearest ranks: what PostgreSQL's percentile_cont computes. */
function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = p * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low);
}

function durations(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    mean: sorted.length ? sorted.reduce((sum, value) => sum + value, 0) / sorted.length : null,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p95: percentile(sorted, 0.95),
  };
}

function expectedGroup(key: string, incidents: Generated[]) {
  const live = incidents.filter((incident) => !incident.cancelled);
  const acknowledged = live.filter((incident) => incident.acknowledgedAt !== null);
  const resolved = live.filter((incident) => incident.resolvedAt !== null);
  return {
    key,
    incidents: live.length,
    acknowledged: acknowledged.length,
    resolved: resolved.length,
    cancelled: incidents.length - live.length,
    timeToAcknowledge: durations(acknowledged.map((i) => (i.acknowledgedAt! - i.createdAt) / 1000)),
    timeToResolve: durations(resolved.map((i) => (i.resolvedAt! - i.createdAt) / 1000)),
  };
}

const mondayOf = (ms: number) => {
  const day = new Date(ms);
  const back = (day.getUTCDay() + 6) % 7;
  return new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate() - back))
    .toISOString()
    .slice(0, 10);
};

const KEY_OF: Record<string, (incident: Generated) => string> = {
  service: (i) => i.service,
  severity: (i) => i.severity,
  project: (i) => i.project,
  environment: (i) => i.environment,
  week: (i) => mondayOf(i.createdAt),
};

function expectedGroups(incidents: Generated[], groupBy?: string) {
  if (!groupBy) return [expectedGroup('all', incidents)];
  const groups = new Map<string, Generated[]>();
  for (const incident of incidents) {
    const key = KEY_OF[groupBy]!(incident);
    groups.set(key, [...(groups.get(key) ?? []), incident]);
  }
  return [...groups.keys()].sort().map((key) => expectedGroup(key, groups.get(key)!));
}

/** Every figure equal, up to float rounding. */
function expectSameFigures(actual: unknown, expected: unknown) {
  const round = (value: unknown): unknown =>
    typeof value === 'number'
      ? Math.round(value * 1e6) / 1e6
      : Array.isArray(value)
        ? value.map(round)
        : value && typeof value === 'object'
          ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, round(v)]))
          : value;
  expect(round(actual)).toEqual(round(expected));
}

describe(`response-time statistics on ${databaseLabel}`, () => {
  let t: TestApp;
  const org = freshOrg('stats');
  const generated: Generated[] = [];

  /** Plays each incident's life through the real command handler, on a clock the test moves. */
  async function generate(orgId: string, count: number, seed: number, into: Generated[]) {
    let now = START;
    const commands = new IncidentCommands({
      store: t.runtime.store,
      database: t.runtime.database,
      clock: () => new Date(now),
    });
    const ctx: CommandContext = { orgId, actor: { type: 'USER', ref: 'gen' }, correlationId: 'gen' };
    const random = seededRandom(seed);
    let last = '';
    for (let i = 0; i < count; i++) {
      const createdAt = START + i * 7 * HOUR + random.int(3_600) * 1000 + random.int(1000);
      now = createdAt;
      const incident: Generated = {
        createdAt,
        service: random.pick(['checkout', 'search', 'auth']),
        severity: random.pick(['SEV1', 'SEV2', 'SEV3', 'SEV4']),
        project: random.pick(['payments', 'platform']),
        environment: random.pick(['production', 'staging']),
        acknowledgedAt: null,
        resolvedAt: null,
        cancelled: false,
      };
      into.push(incident);
      const created = await commands.execute(ctx, null, {
        type: 'CreateIncident',
        projectId: incident.project,
        title: `generated ${i}`,
        serviceName: incident.service,
        severity: incident.severity as 'SEV1',
        environment: incident.environment,
      });
      const id = created.incidentId;
      last = created.position;
      const move = async (newStatus: 'INVESTIGATING' | 'MITIGATED' | 'RESOLVED' | 'CANCELLED') => {
        now += 1000 + random.int(3 * HOUR);
        last = (await commands.execute(ctx, id, { type: 'ChangeStatus', newStatus })).position;
        if (incident.acknowledgedAt === null) incident.acknowledgedAt = now;
        if (newStatus === 'RESOLVED') incident.resolvedAt = now;
        if (newStatus === 'INVESTIGATING') incident.resolvedAt = null;
        if (newStatus === 'CANCELLED') incident.cancelled = true;
      };
      const fate = random.int(10);
      if (fate === 0) continue; // never acknowledged
      if (fate === 1) {
        await move('CANCELLED'); // cancelled straight away (which also leaves OPEN)
        continue;
      }
      if (fate === 2) {
        await move('INVESTIGATING');
        await move('CANCELLED');
        continue;
      }
      if (fate === 3) {
        await move('RESOLVED'); // resolved straight from OPEN: acknowledged and resolved at once
        continue;
      }
      await move('INVESTIGATING');
      if (random.chance(0.5)) await move('MITIGATED');
      if (fate === 4) continue; // acknowledged, never resolved
      await move('RESOLVED');
      if (fate >= 8) {
        await move('INVESTIGATING'); // reopened…
        if (fate === 9) await move('RESOLVED'); // …and resolved again: the last resolution counts
      }
    }
    expect(await t.runtime.progress.waitFor(last, 30_000)).toBe(true);
  }

  beforeAll(async () => {
    t = await startTestApp();
    await generate(org, 90, 11, generated);
    // Another org with incidents over the same weeks: never in this org's figures.
    await generate(freshOrg('other'), 20, 12, []);
  }, 180_000);
  afterAll(async () => {
    await t?.cleanup();
  });

  const stats = (query: string, token = t.token({ orgs: { [org]: ['MEMBER'] } }), orgId = org) =>
    t.request({ method: 'GET', url: `/api/orgs/${orgId}/stats/response-times${query}`, token });

  const range = { from: new Date(START).toISOString(), to: new Date(START + 90 * 7 * HOUR).toISOString() };
  const inRange = `from=${range.from}&to=${range.to}`;

  it('the generated lives cover what the figures must handle', () => {
    expect(generated.filter((i) => i.cancelled).length).toBeGreaterThan(3);
    expect(generated.filter((i) => i.acknowledgedAt === null).length).toBeGreaterThan(3);
    expect(
      generated.filter((i) => !i.cancelled && i.acknowledgedAt !== null && i.resolvedAt === null).length,
    ).toBeGreaterThan(3);
  });

  it('a week holds incidents from both halves of the range, which are read apart and merged', () => {
    const middle = (Date.parse(range.from) + Date.parse(range.to)) / 2;
    const week = mondayOf(middle);
    const inWeek = generated.filter((i) => mondayOf(i.createdAt) === week);
    expect(inWeek.some((i) => i.createdAt < middle)).toBe(true);
    expect(inWeek.some((i) => i.createdAt >= middle)).toBe(true);
  });

  for (const groupBy of [undefined, 'service', 'severity', 'project', 'environment', 'week']) {
    it(`every figure matches one computed from the generated incidents (groupBy ${groupBy ?? 'none'})`, async () => {
      const response = await stats(`?${inRange}${groupBy ? `&groupBy=${groupBy}` : ''}`);
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json<{ from: string; to: string; groups: unknown[] }>();
      expect(body.from).toBe(range.from);
      expect(body.to).toBe(range.to);
      expectSameFigures(body.groups, expectedGroups(generated, groupBy));
    });
  }

  it('filters and the [from, to) bounds select the same incidents as the test does', async () => {
    const from = generated[10]!.createdAt;
    const to = generated[60]!.createdAt;
    const window = generated.filter((i) => i.createdAt >= from && i.createdAt < to);
    const iso = (ms: number) => new Date(ms).toISOString();
    const cases: [string, Generated[]][] = [
      [`from=${iso(from)}&to=${iso(to)}`, window],
      [
        `from=${iso(from)}&to=${iso(to)}&serviceName=checkout&environment=production`,
        window.filter((i) => i.service === 'checkout' && i.environment === 'production'),
      ],
      [`${inRange}&projectId=platform`, generated.filter((i) => i.project === 'platform')],
      [`${inRange}&severity=SEV1,SEV2`, generated.filter((i) => ['SEV1', 'SEV2'].includes(i.severity))],
    ];
    for (const [query, expected] of cases) {
      const response = await stats(`?${query}&groupBy=severity`);
      expect(response.statusCode, response.body).toBe(200);
      expectSameFigures(response.json<{ groups: unknown[] }>().groups, expectedGroups(expected, 'severity'));
    }
  });

  it('nothing qualifies: null figures for `all`, no groups when grouped; the default is the last 30 days', async () => {
    const empty = await stats('?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z');
    expect(empty.json()).toEqual({
      from: '2020-01-01T00:00:00.000Z',
      to: '2020-02-01T00:00:00.000Z',
      groups: [expectedGroup('all', [])],
    });
    expect(expectedGroup('all', []).timeToAcknowledge).toEqual({
      mean: null,
      p50: null,
      p90: null,
      p95: null,
    });
    const grouped = await stats('?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z&groupBy=week');
    expect(grouped.json<{ groups: unknown[] }>().groups).toEqual([]);

    const before = Date.now();
    const recent = (await stats('')).json<{ from: string; to: string; groups: { incidents: number }[] }>();
    const to = Date.parse(recent.to);
    expect(to).toBeGreaterThanOrEqual(before - 1000);
    expect(to - Date.parse(recent.from)).toBe(30 * 86_400_000);
    expect(recent.groups[0]!.incidents).toBe(0); // the generated incidents are from March 2026
  });

  it('refuses bad queries and other orgs', async () => {
    expectProblem(await stats(`?from=${range.to}&to=${range.from}`), 400, 'VALIDATION_FAILED');
    expectProblem(await stats('?groupBy=team'), 400, 'VALIDATION_FAILED');
    expectProblem(await stats('?from=yesterday'), 400, 'VALIDATION_FAILED');
    expectProblem(await stats('?severity=SEV9'), 400, 'VALIDATION_FAILED');
    expectProblem(await stats('', t.token({ orgs: { other: ['ORG_ADMIN'] } })), 403, 'FORBIDDEN');
    expectProblem(
      await t.request({ method: 'GET', url: `/api/orgs/${org}/stats/response-times` }),
      401,
      'UNAUTHENTICATED',
    );
  });
});
