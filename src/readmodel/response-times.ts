import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Schema } from '../db/schema.ts';

export type ResponseTimesGroupBy = 'service' | 'severity' | 'project' | 'environment' | 'week';

export interface ResponseTimesQuery {
  /** Incidents created in [from, to), ISO-8601. */
  from: string;
  to: string;
  groupBy?: ResponseTimesGroupBy;
  projectId?: string;
  serviceName?: string;
  environment?: string;
  /** Any of these. */
  severity?: readonly string[];
}

/** Seconds; null when no incident qualifies. */
export interface Durations {
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p95: number | null;
}

export interface ResponseTimesGroup {
  key: string;
  /** Incidents created in the range, cancelled ones left out. */
  incidents: number;
  acknowledged: number;
  /** Resolved now (a reopened incident counts only once resolved again). */
  resolved: number;
  cancelled: number;
  timeToAcknowledge: Durations;
  timeToResolve: Durations;
}

/**
 * The SQL expression of each grouping; a week is keyed by its Monday (UTC), a timestamp until
 * formatted. Text keys compare bytewise ("C"), and the answer lists them in that order (byKey):
 * the same order as any UTF-8 code-point collation.
 */
const GROUP_KEY: Record<ResponseTimesGroupBy, RawBuilder<unknown>> = {
  service: sql`service_name collate "C"`,
  severity: sql`severity collate "C"`,
  project: sql`project_id collate "C"`,
  environment: sql`environment collate "C"`,
  week: sql`date_trunc('week', created_at at time zone 'UTC')`,
};

/** How a group's key is answered: a week as `YYYY-MM-DD`; without grouping, `all`. */
function keyText(groupBy: ResponseTimesGroupBy | undefined): RawBuilder<string> {
  if (groupBy === undefined) return sql<string>`'all'`;
  return groupBy === 'week' ? sql<string>`to_char(slice.key, 'YYYY-MM-DD')` : sql<string>`slice.key`;
}

/** One part's row of a group: its counts, and its durations as packed big-endian float8s. */
interface PartRow {
  key: string;
  incidents: string | number;
  acknowledged: string | number;
  resolved: string | number;
  cancelled: string | number;
  tta: Uint8Array | null;
  ttr: Uint8Array | null;
}

/**
 * One part's query: a row per group of the incidents created in [from, to). The inner query is the
 * org's slice of the range in the index that leads with (org_id, created_at) and carries every
 * column used (migrations 0006 and 0008), read in index order: that ORDER BY, kept by OFFSET 0, is
 * what makes the planner take the index-only scan even when the org holds most of the table (a
 * sequential scan would read every other org's rows too). The filters apply to that slice, so every
 * answer costs at most the org's incidents of the range. The durations are the index's own
 * (generated columns, migration 0008), handed out whole, 8 bytes each, for responseTimes to rank:
 * a hash aggregate, where PostgreSQL's percentile_cont would sort the slice by group, then each
 * group by duration, on one core.
 */
export function responseTimesQuery(orgId: string, query: ResponseTimesQuery) {
  const key = query.groupBy ? GROUP_KEY[query.groupBy] : sql`null`;
  const filters = [
    query.projectId !== undefined ? sql`and project_id = ${query.projectId}` : sql``,
    query.serviceName !== undefined ? sql`and service_name = ${query.serviceName}` : sql``,
    query.environment !== undefined ? sql`and environment = ${query.environment}` : sql``,
    query.severity?.length ? sql`and severity = any(${query.severity}::text[])` : sql``,
  ];
  const live = sql`status <> 'CANCELLED'`;
  const resolvedNow = sql`status = 'RESOLVED'`;
  return sql<PartRow>`
    select ${keyText(query.groupBy)} as key,
      count(*) filter (where ${live}) as incidents,
      count(tta) filter (where ${live}) as acknowledged,
      count(*) filter (where ${resolvedNow}) as resolved,
      count(*) filter (where not ${live}) as cancelled,
      string_agg(float8send(tta), ''::bytea) filter (where ${live}) as tta,
      string_agg(float8send(ttr), ''::bytea) filter (where ${resolvedNow}) as ttr
    from (
      select ${key} as key, status, project_id, service_name, environment, severity,
        time_to_acknowledge as tta, time_to_resolve as ttr
      from incidents
      where org_id = ${orgId} and created_at >= ${query.from}::timestamptz and created_at < ${query.to}::timestamptz
      order by created_at
      offset 0
    ) as slice
    where true ${sql.join(filters, sql` `)}
    ${query.groupBy ? sql`group by slice.key` : sql``}`;
}

/**
 * The range is read in this many parts at once, one connection each: PostgreSQL gives a query one
 * core, and the parts' groups merge exactly (their counts add, their durations join).
 */
const PARTS = 2;

/** The same query over consecutive sub-ranges of [from, to). */
function parts(query: ResponseTimesQuery): ResponseTimesQuery[] {
  const from = Date.parse(query.from);
  const span = Date.parse(query.to) - from;
  const bounds = [
    query.from,
    ...Array.from({ length: PARTS - 1 }, (_, i) => new Date(from + (span * (i + 1)) / PARTS).toISOString()),
    query.to,
  ];
  return bounds.slice(1).map((to, i) => ({ ...query, from: bounds[i]!, to }));
}

interface Merged {
  key: string;
  incidents: number;
  acknowledged: number;
  resolved: number;
  cancelled: number;
  tta: Uint8Array[];
  ttr: Uint8Array[];
}

/** The durations the parts handed out, sorted. */
function sortedSeconds(packed: Uint8Array[]): Float64Array {
  const values = new Float64Array(packed.reduce((sum, bytes) => sum + bytes.byteLength / 8, 0));
  let at = 0;
  for (const bytes of packed) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let offset = 0; offset < bytes.byteLength; offset += 8) values[at++] = view.getFloat64(offset);
  }
  return values.sort();
}

/** What PostgreSQL's percentile_cont computes: linear interpolation between the two nearest ranks. */
function percentile(sorted: Float64Array, fraction: number): number | null {
  if (sorted.length === 0) return null;
  const rank = fraction * (sorted.length - 1);
  const low = sorted[Math.floor(rank)]!;
  const high = sorted[Math.ceil(rank)]!;
  return low + (high - low) * (rank - Math.floor(rank));
}

function durations(packed: Uint8Array[]): Durations {
  const sorted = sortedSeconds(packed);
  return {
    mean: sorted.length === 0 ? null : sorted.reduce((sum, value) => sum + value, 0) / sorted.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p95: percentile(sorted, 0.95),
  };
}

/** Text keys in bytewise (UTF-8) order, as `collate "C"` sorts them; week keys are ISO dates. */
const byKey = (a: Merged, b: Merged) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key));

/** How fast an org acknowledged and resolved the incidents created in [from, to), per group. */
export async function responseTimes(
  db: Kysely<Schema>,
  orgId: string,
  query: ResponseTimesQuery,
): Promise<ResponseTimesGroup[]> {
  const answers = await Promise.all(parts(query).map((part) => responseTimesQuery(orgId, part).execute(db)));
  const groups = new Map<string, Merged>();
  for (const { rows } of answers)
    for (const row of rows) {
      let group = groups.get(row.key);
      if (!group) {
        group = { key: row.key, incidents: 0, acknowledged: 0, resolved: 0, cancelled: 0, tta: [], ttr: [] };
        groups.set(row.key, group);
      }
      group.incidents += Number(row.incidents);
      group.acknowledged += Number(row.acknowledged);
      group.resolved += Number(row.resolved);
      group.cancelled += Number(row.cancelled);
      if (row.tta) group.tta.push(row.tta);
      if (row.ttr) group.ttr.push(row.ttr);
    }
  // Without grouping each part answers one row, however many incidents it found: one group `all`.
  return [...groups.values()].sort(byKey).map(({ tta, ttr, ...counts }) => ({
    ...counts,
    timeToAcknowledge: durations(tta),
    timeToResolve: durations(ttr),
  }));
}
