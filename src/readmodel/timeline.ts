import { sql, type Kysely, type Selectable } from 'kysely';
import type { ActionsTable, Schema, SignalsTable, SloViolationsTable } from '../db/schema.ts';
import {
  toActionView,
  toSignalView,
  toSloViolationView,
  type ActionView,
  type SignalView,
  type SloViolationView,
} from './incidents.ts';

/**
 * One incident's timeline: its actions, signals and SLO violations in one list ordered by (ts,
 * version). An SLO violation stands at the start of its window. One event makes at most one row of
 * the three tables, so (ts, version) orders every entry of an incident totally.
 */
export type TimelineEntry =
  | ({ kind: 'action'; version: number } & ActionView)
  | ({ kind: 'signal'; version: number } & SignalView)
  | ({ kind: 'slo_violation'; ts: string; version: number } & SloViolationView);

/** Where a page ended: the last entry's ts (exact to the microsecond) and version. */
export interface TimelineKeyset {
  ts: string;
  version: number;
}

export interface TimelinePage {
  entries: TimelineEntry[];
  /** Keyset of the last entry when more follow, else null. */
  next: TimelineKeyset | null;
}

interface TimelineRow {
  kind: TimelineEntry['kind'];
  cursor_ts: string;
  version: number;
  row: Record<string, unknown>;
}

const exactTs = (column: string) =>
  sql<string>`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * The SQL of one page: each table's next `limit + 1` entries by its (org, incident, ts, version)
 * index (migration 0006), merged and cut to `limit + 1`; no table is read further than the page.
 */
export function timelineQuery(
  orgId: string,
  incidentId: string,
  options: { limit: number; after?: TimelineKeyset },
) {
  const take = options.limit + 1;
  const branch = (kind: TimelineEntry['kind'], table: string, ts: string) => {
    const after = options.after
      ? sql`and (${sql.ref(ts)}, version) > (${options.after.ts}::timestamptz, ${options.after.version})`
      : sql``;
    return sql`(select ${kind}::text as kind, ${sql.ref(ts)} as ts, version, ${exactTs(ts)} as cursor_ts,
        to_jsonb(t) as row
      from ${sql.table(table)} as t
      where org_id = ${orgId} and incident_id = ${incidentId} ${after}
      order by ${sql.ref(ts)}, version limit ${take})`;
  };
  return sql<TimelineRow>`${branch('action', 'incident_actions', 'ts')}
    union all ${branch('signal', 'incident_signals', 'ts')}
    union all ${branch('slo_violation', 'incident_slo_violations', 'window_start')}
    order by ts, version limit ${take}`;
}

function toEntry({ kind, version, row }: TimelineRow): TimelineEntry {
  switch (kind) {
    case 'action':
      return { kind, version, ...toActionView(row as unknown as Selectable<ActionsTable>) };
    case 'signal':
      return { kind, version, ...toSignalView(row as unknown as Selectable<SignalsTable>) };
    case 'slo_violation': {
      const view = toSloViolationView(row as unknown as Selectable<SloViolationsTable>);
      return { kind, ts: view.windowStart, version, ...view };
    }
  }
}

/** One page of an incident's timeline, oldest first, after the given keyset. */
export async function incidentTimeline(
  db: Kysely<Schema>,
  orgId: string,
  incidentId: string,
  options: { limit: number; after?: TimelineKeyset },
): Promise<TimelinePage> {
  const { rows } = await timelineQuery(orgId, incidentId, options).execute(db);
  const page = rows.slice(0, options.limit);
  const last = page.at(-1);
  return {
    entries: page.map(toEntry),
    next: rows.length > options.limit && last ? { ts: last.cursor_ts, version: Number(last.version) } : null,
  };
}
