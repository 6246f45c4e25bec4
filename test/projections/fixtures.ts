import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Database } from '../../src/db/database.ts';
import {
  ClientActionKind,
  CURRENT_SCHEMA_VERSION,
  Severity,
  SignalType,
  Status,
  decide,
  evolve,
  type IncidentCommand,
  type IncidentEvent,
  type IncidentState,
} from '../../src/domain/incident/index.ts';
import { incidentStreamName } from '../../src/domain/streams.ts';
import type { EventStore, EventToAppend } from '../../src/eventstore/port.ts';
import { PROJECTORS } from '../../projections/catalog.ts';
import { ProjectionProgress } from '../../projections/progress.ts';
import { keyString, type Projector, type Row } from '../../projections/projector.ts';

/** A small seeded generator (mulberry32): the same seed gives the same log shape. */
export function seededRandom(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (below: number) => Math.floor(next() * below);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const chance = (p: number) => next() < p;
  return { next, int, pick, chance };
}
export type Random = ReturnType<typeof seededRandom>;

/** One append: a stream, the version it expects, and its events. */
export interface PlannedAppend {
  streamName: string;
  expected: number | 'no_stream';
  events: EventToAppend[];
}

// Awkward ones among them: quotes, backslashes, braces, commas, NULL and non-ASCII must survive
// the way rows are written (array literals, text arrays) byte for byte.
const TAGS = [
  'latency',
  'db',
  'customer-facing',
  'infra/network',
  'p0',
  'regional',
  'say "hi"',
  'back\\slash',
  '{braces},comma',
  'NULL',
  'ünïcødé ✓',
];
const TICKETS = [
  { system: 'JIRA', key: 'OPS-1' },
  { system: 'JIRA', key: 'OPS-2' },
  { system: 'PAGERDUTY', key: 'PD-77' },
];
const CORRELATION_KEYS = [
  'checkout:5xx',
  'db:replica-lag',
  'edge:tls',
  'queue:backlog',
  'null',
  'a,b {c} "d" \\e',
];
const ACTORS = [
  { type: 'USER', ref: 'alice' },
  { type: 'USER', ref: 'bob' },
  { type: 'SYSTEM', ref: 'its' },
  { type: 'INTEGRATION', ref: 'alertmanager' },
] as const;

/** An ISO-8601 time written with a UTC offset, as an old event might carry it. */
function withOffset(ms: number, offsetMinutes: number): string {
  const shifted = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, -1);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${shifted}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

function randomCommand(random: Random, state: NonNullable<IncidentState>, at: number): IncidentCommand {
  const reason = random.chance(0.5) ? { reason: `because ${random.int(100)}` } : {};
  switch (random.int(10)) {
    case 0: {
      const changes = random.pick([
        { title: `Retitled ${random.int(1000)}` },
        { description: random.chance(0.5) ? null : `details ${random.int(1000)}` },
        {
          serviceName: random.pick(['checkout', 'payments', 'search']),
          environment: random.pick(['production', 'staging']),
        },
        {
          runbookPath: random.chance(0.5) ? null : `runbooks/${random.int(10)}.md`,
          detectedBy: random.chance(0.5) ? null : 'synthetics',
        },
        { projectId: random.pick(['payments', 'platform']) },
      ]);
      return { type: 'UpdateIncident', changes };
    }
    case 1:
    case 2:
      return { type: 'ChangeStatus', newStatus: random.pick(Status.options), ...reason };
    case 3:
      return { type: 'ChangeSeverity', newSeverity: random.pick(Severity.options), ...reason };
    case 4:
      return random.chance(0.6)
        ? { type: 'AddTag', tag: random.pick(TAGS) }
        : { type: 'RemoveTag', tag: random.pick(state.tags.length ? state.tags : TAGS) };
    case 5:
      return {
        type: 'LinkTicket',
        ...random.pick(TICKETS),
        ...(random.chance(0.5) ? { url: `https://tickets.example/${random.int(100)}` } : {}),
      };
    case 6:
    case 7:
      return {
        type: 'IngestSignal',
        signalId: `sig_${randomUUID()}`,
        signalType: random.pick(SignalType.options),
        source: random.pick(['prometheus', 'datadog', 'deploybot']),
        summary: `signal ${random.int(10_000)}`,
        ...(random.chance(0.6) ? { correlationKey: random.pick(CORRELATION_KEYS) } : {}),
        ...(random.chance(0.3) ? { traceId: `trace-${random.int(1e6)}` } : {}),
        ...(random.chance(0.4)
          ? {
              data: {
                value: random.int(1000),
                labels: { region: random.pick(['eu', 'us']) },
                ok: random.chance(0.5),
              },
            }
          : {}),
        // Sub-millisecond and offset times: the projection must store them the same on every replay.
        ts: random.chance(0.3)
          ? `${new Date(at).toISOString().slice(0, -1)}${random.int(1000)}Z`
          : random.chance(0.5)
            ? withOffset(at, 120)
            : new Date(at).toISOString(),
      };
    case 8: {
      const actionKind = random.pick(ClientActionKind.options);
      return {
        type: 'RecordAction',
        actionId: `act_${randomUUID()}`,
        actionKind,
        label: `${actionKind.toLowerCase()} ${random.int(100)}`,
        ...(random.chance(0.5) ? { details: 'ran it' } : {}),
      };
    }
    default:
      return {
        type: 'RecordSloViolation',
        violationId: `slo_${randomUUID()}`,
        sloId: random.pick(['availability', 'latency-p99']),
        windowStart: new Date(at - 3_600_000).toISOString(),
        windowEnd: new Date(at).toISOString(),
        errorBudgetConsumed: random.int(10_000) / 100,
        thresholdBreached: random.chance(0.5),
        ...(random.chance(0.5) ? { details: 'burn rate 14x' } : {}),
      };
  }
}

/**
 * A varied, valid event log: incidents of the given orgs, each driven by random commands through
 * the domain's decide (so every lifecycle is legal), appended in interleaved chunks of 1-4 commands.
 */
export function generateLog(options: {
  seed: number;
  orgs: string[];
  incidents: number;
  events: number;
}): PlannedAppend[] {
  const random = seededRandom(options.seed);
  const incidents = Array.from({ length: options.incidents }, (_, index) => ({
    orgId: options.orgs[index % options.orgs.length]!,
    incidentId: `inc_${randomUUID().replaceAll('-', '')}`,
    state: null as IncidentState,
    version: -1,
  }));
  const appends: PlannedAppend[] = [];
  let clock = Date.UTC(2024, 0, 1);
  let total = 0;
  while (total < options.events) {
    const incident = random.pick(incidents);
    const events: EventToAppend[] = [];
    for (let commands = 1 + random.int(4); commands > 0; commands--) {
      clock += 1 + random.int(5000);
      const command: IncidentCommand =
        incident.state === null
          ? {
              type: 'CreateIncident',
              incidentId: incident.incidentId,
              projectId: 'payments',
              title: random.chance(0.1)
                ? `Incident\t"${random.int(1e6)}"\nsecond line \\ {x}`
                : `Incident ${random.int(1e6)}`,
              serviceName: 'checkout',
              severity: random.pick(Severity.options),
              environment: 'production',
              tags: random.chance(0.5) ? [random.pick(TAGS), random.pick(TAGS)] : [],
              ...(random.chance(0.5) ? { initialCorrelationKey: random.pick(CORRELATION_KEYS) } : {}),
              ...(random.chance(0.3)
                ? { description: 'it is slow', detectedBy: 'synthetics', runbookPath: 'runbooks/latency.md' }
                : {}),
            }
          : randomCommand(random, incident.state, clock);
      let decided: IncidentEvent[];
      try {
        decided = decide(command, incident.state);
      } catch {
        continue; // a move the lifecycle forbids: the service would refuse it and append nothing
      }
      const actor = random.pick(ACTORS);
      for (const event of decided) {
        incident.state = evolve(incident.state, event);
        events.push({
          eventId: randomUUID(),
          type: event.type,
          data: event.data,
          metadata: {
            orgId: incident.orgId,
            incidentId: incident.incidentId,
            actor,
            occurredAt: random.chance(0.1) ? withOffset(clock, -300) : new Date(clock).toISOString(),
            correlationId: `req-${random.int(1e9)}`,
            schemaVersion: CURRENT_SCHEMA_VERSION[event.type],
          },
        });
      }
    }
    if (events.length === 0) continue;
    appends.push({
      streamName: incidentStreamName(incident.orgId, incident.incidentId),
      expected: incident.version === -1 ? 'no_stream' : incident.version,
      events,
    });
    incident.version += events.length;
    total += events.length;
  }
  return appends;
}

/** Appends a planned log in order; returns the position of its last event. */
export async function appendLog(
  store: EventStore,
  appends: readonly PlannedAppend[],
): Promise<string | null> {
  let position: string | null = null;
  for (const append of appends) {
    ({ position } = await store.append(append.streamName, append.events, append.expected));
  }
  return position;
}

export function countEvents(appends: readonly PlannedAppend[]): number {
  return appends.reduce((sum, append) => sum + append.events.length, 0);
}

/** Every read-model table as text, row by row in key order: two equal dumps are byte-identical tables. */
/**
 * A projector's rows of these orgs as the database serves them, timestamps as ISO strings, in key
 * order: the columns it writes, so they compare with the pure fold (PostgreSQL's generated ones left out).
 */
export async function servedRows(
  database: Database,
  projector: Pick<Projector, 'table' | 'keyColumns'>,
  orgs: string[],
): Promise<Row[]> {
  const db = database.db;
  const { rows } =
    await sql<Row>`select * from ${sql.table(projector.table)} where org_id in (${sql.join(orgs)})`.execute(
      db,
    );
  const generated = new Set(
    (
      await sql<{ name: string }>`
        select attname as name from pg_attribute where attrelid = ${projector.table}::regclass and attgenerated <> ''`.execute(
        db,
      )
    ).rows.map(({ name }) => name),
  );
  const byKey = (row: Row) => keyString(projector.keyColumns.map((column) => String(row[column])));
  return rows
    .map((row) =>
      Object.fromEntries(
        Object.entries(row)
          .filter(([column]) => !generated.has(column))
          .map(([column, value]) => [column, value instanceof Date ? value.toISOString() : value]),
      ),
    )
    .sort((a, b) => (byKey(a) < byKey(b) ? -1 : byKey(a) > byKey(b) ? 1 : 0));
}

export async function dumpReadModels(database: Database): Promise<Record<string, string>> {
  const dump: Record<string, string> = {};
  for (const projector of PROJECTORS.values()) dump[projector.table] = await dumpTable(database, projector);
  return dump;
}

export async function dumpTable(
  database: Database,
  projector: Pick<Projector, 'table' | 'keyColumns'>,
): Promise<string> {
  const order = sql.join(projector.keyColumns.map((column) => sql.ref(`t.${column}`)));
  const { rows } = await sql<{
    row: string;
  }>`select t::text as row from ${sql.table(projector.table)} t order by ${order}`.execute(database.db);
  return rows.map(({ row }) => row).join('\n');
}

/**
 * A test-only projection that counts how often each event was applied to it: any count but 1
 * means an event was lost or applied twice.
 */
export const auditProjector: Projector<{ event_id: string; applied: number }> = {
  name: 'audit',
  table: 'projection_audit',
  keyColumns: ['event_id'],
  insertsOnly: false,
  rowKey: (event) => [event.eventId],
  evolve: (row, event) => ({ event_id: event.eventId, applied: (row?.applied ?? 0) + 1 }),
};

export async function createAuditTable(database: Database): Promise<void> {
  await sql`create table if not exists projection_audit (event_id text primary key, applied integer not null)`.execute(
    database.db,
  );
}

/** Waits, on the projections' own progress notices, until every named checkpoint reaches `position`. */
export async function waitForCheckpoints(
  database: Database,
  position: string | null,
  names: readonly string[] = [...PROJECTORS.keys()],
  timeoutMs = 30_000,
): Promise<void> {
  if (position === null) return;
  const progress = new ProjectionProgress(database, names);
  try {
    if (!(await progress.waitFor(position, timeoutMs)))
      throw new Error(`projections ${names.join(', ')} did not reach ${position} within ${timeoutMs} ms`);
  } finally {
    await progress.stop();
  }
}
