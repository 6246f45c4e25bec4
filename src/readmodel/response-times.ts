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

/** The SQL expression of each grouping; a week is keyed by its Monday (UTC), `YYYY-MM-DD`. */
const GROUP_KEY: Record<ResponseTimesGroupBy, RawBuilder<string>> = {
  service: sql<string>`service_name`,
  severity: sql<string>`severity`,
  project: sql<string>`project_id`,
  environment: sql<string>`environment`,
  week: sql<string>`to_char(date_trunc('week', created_at at time zone 'UTC'), 'YYYY-MM-DD')`,
};

interface StatsRow {
  key: string;
  incidents: string | number;
  acknowledged: string | number;
  resolved: string | number;
  cancelled: string | number;
  tta_mean: number | string | null;
  tta: (number | string)[] | null;
  ttr_mean: number | string | null;
  ttr: (number | string)[] | null;
}

/**
 * One row per group, aggregated by PostgreSQL from the incidents created in the range, read through
 * the index that leads with (org_id, created_at) and carries every column used (migration 0006).
 * Percentiles are continuous (linear interpolation between the two nearest values).
 */
export function responseTimesQuery(orgId: string, query: ResponseTimesQuery) {
  const key = query.groupBy ? GROUP_KEY[query.groupBy] : sql<string>`'all'`;
  const filters = [
    query.projectId !== undefined ? sql`and project_id = ${query.projectId}` : sql``,
    query.serviceName !== undefined ? sql`and service_name = ${query.serviceName}` : sql``,
    query.environment !== undefined ? sql`and environment = ${query.environment}` : sql``,
    query.severity?.length ? sql`and severity = any(${query.severity}::text[])` : sql``,
  ];
  // date_part answers float8; extract's numeric would cost a conversion per row and aggregate.
  const tta = sql`date_part('epoch', acknowledged_at - created_at)`;
  const ttr = sql`date_part('epoch', resolved_at - created_at)`;
  const live = sql`status <> 'CANCELLED'`;
  const resolvedNow = sql`status = 'RESOLVED'`;
  return sql<StatsRow>`
    select ${key} as key,
      count(*) filter (where ${live}) as incidents,
      count(acknowledged_at) filter (where ${live}) as acknowledged,
      count(*) filter (where ${resolvedNow}) as resolved,
      count(*) filter (where not ${live}) as cancelled,
      avg(${tta}) filter (where ${live}) as tta_mean,
      percentile_cont(array[0.5, 0.9, 0.95]) within group (order by ${tta}) filter (where ${live}) as tta,
      avg(${ttr}) filter (where ${resolvedNow}) as ttr_mean,
      percentile_cont(array[0.5, 0.9, 0.95]) within group (order by ${ttr}) filter (where ${resolvedNow}) as ttr
    from incidents
    where org_id = ${orgId} and created_at >= ${query.from}::timestamptz and created_at < ${query.to}::timestamptz
      ${sql.join(filters, sql` `)}
    ${query.groupBy ? sql`group by 1 order by 1` : sql``}`;
}

const count = (value: string | number): number => Number(value);
const seconds = (value: number | string | null | undefined): number | null =>
  value === null || value === undefined ? null : Number(value);

function durations(mean: StatsRow['tta_mean'], percentiles: StatsRow['tta']): Durations {
  return {
    mean: seconds(mean),
    p50: seconds(percentiles?.[0]),
    p90: seconds(percentiles?.[1]),
    p95: seconds(percentiles?.[2]),
  };
}

/** How fast an org acknowledged and resolved the incidents created in [from, to), per group. */
export async function responseTimes(
  db: Kysely<Schema>,
  orgId: string,
  query: ResponseTimesQuery,
): Promise<ResponseTimesGroup[]> {
  const { rows } = await responseTimesQuery(orgId, query).execute(db);
  return rows.map((row) => ({
    key: row.key,
    incidents: count(row.incidents),
    acknowledged: count(row.acknowledged),
    resolved: count(row.resolved),
    cancelled: count(row.cancelled),
    timeToAcknowledge: durations(row.tta_mean, row.tta),
    timeToResolve: durations(row.ttr_mean, row.ttr),
  }));
}
