import {
  sql,
  type Expression,
  type ExpressionBuilder,
  type Kysely,
  type Selectable,
  type SqlBool,
} from 'kysely';
import type { AlertStatus, Severity, SignalType, Status } from '../domain/incident/index.ts';
import type { ActionsTable, IncidentsTable, Schema, SignalsTable, SloViolationsTable } from '../db/schema.ts';

/** An incident as the API serves it: absent values null, lists [], times ISO-8601 UTC. */
export interface IncidentView {
  id: string;
  orgId: string;
  projectId: string;
  title: string;
  description: string | null;
  serviceName: string;
  status: Status;
  severity: Severity;
  environment: string;
  detectedBy: string | null;
  primarySignalId: string | null;
  runbookPath: string | null;
  externalRefs: { system: string; key: string; url: string | null; linkedAt: string }[];
  correlationKeys: string[];
  tags: string[];
  createdBy: { type: string; ref: string };
  createdAt: string;
  updatedAt: string;
  acknowledgedAt: string | null;
  mitigatedAt: string | null;
  resolvedAt: string | null;
  cancelledAt: string | null;
  version: number;
}

export interface SignalView {
  id: string;
  incidentId: string;
  orgId: string;
  signalType: SignalType;
  source: string;
  summary: string;
  serviceName: string | null;
  environment: string | null;
  correlationKey: string | null;
  traceId: string | null;
  fingerprint: string | null;
  status: AlertStatus | null;
  data: Record<string, unknown> | null;
  ts: string;
}

export interface ActionView {
  id: string;
  incidentId: string;
  orgId: string;
  actionKind: string;
  label: string;
  details: string | null;
  actorType: string;
  actorRef: string;
  ts: string;
}

export interface SloViolationView {
  id: string;
  incidentId: string;
  orgId: string;
  sloId: string;
  windowStart: string;
  windowEnd: string;
  errorBudgetConsumed: number;
  thresholdBreached: boolean;
  details: string | null;
}

export interface IncidentDetails {
  incident: IncidentView;
  signals: SignalView[];
  actions: ActionView[];
  sloViolations: SloViolationView[];
  /** How many of each the incident has in all; the lists hold at most DETAILS_LIST_LIMIT of them. */
  counts: { signals: number; actions: number; sloViolations: number };
}

/** Details embed at most this many of each list (the most recent); the timeline pages through the rest. */
export const DETAILS_LIST_LIMIT = 200;

export interface IncidentFilter {
  projectId?: string;
  environment?: string;
  serviceName?: string;
  /** Any of these. */
  status?: string[];
  /** Any of these. */
  severity?: string[];
  tag?: string;
  correlationKey?: string;
  /** Case-insensitive substring of the title. */
  q?: string;
  /** Inclusive bounds on createdAt, ISO-8601. */
  createdFrom?: string;
  createdTo?: string;
}

export type IncidentSort = 'createdAt' | 'updatedAt' | 'severity';
export type SortOrder = 'asc' | 'desc';

/**
 * Where a page ended: the sort key of its last row, exact to the microsecond, and its id.
 * `rank` is only set for the severity sort.
 */
export interface Keyset {
  rank?: number;
  ts: string;
  id: string;
}

export interface IncidentPage {
  incidents: IncidentView[];
  /** Keyset of the last row when more rows follow, else null. */
  next: Keyset | null;
}

const iso = (value: Date | string): string => new Date(value).toISOString();
const isoOrNull = (value: Date | string | null): string | null => (value === null ? null : iso(value));

export function toIncidentView(row: Selectable<IncidentsTable>): IncidentView {
  const refs =
    typeof row.external_refs === 'string'
      ? (JSON.parse(row.external_refs) as IncidentView['externalRefs'])
      : row.external_refs;
  return {
    id: row.id,
    orgId: row.org_id,
    projectId: row.project_id,
    title: row.title,
    description: row.description,
    serviceName: row.service_name,
    status: row.status as Status,
    severity: row.severity as Severity,
    environment: row.environment,
    detectedBy: row.detected_by,
    primarySignalId: row.primary_signal_id,
    runbookPath: row.runbook_path,
    externalRefs: (refs ?? []).map((ref) => ({
      system: ref.system,
      key: ref.key,
      url: ref.url ?? null,
      linkedAt: iso(ref.linkedAt),
    })),
    correlationKeys: row.correlation_keys ?? [],
    tags: row.tags ?? [],
    createdBy: { type: row.created_by_type, ref: row.created_by_ref },
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
    acknowledgedAt: isoOrNull(row.acknowledged_at),
    mitigatedAt: isoOrNull(row.mitigated_at),
    resolvedAt: isoOrNull(row.resolved_at),
    cancelledAt: isoOrNull(row.cancelled_at),
    version: Number(row.version),
  };
}

export function toSignalView(row: Selectable<SignalsTable>): SignalView {
  return {
    id: row.id,
    incidentId: row.incident_id,
    orgId: row.org_id,
    signalType: row.signal_type as SignalType,
    source: row.source,
    summary: row.summary,
    serviceName: row.service_name,
    environment: row.environment,
    correlationKey: row.correlation_key,
    traceId: row.trace_id,
    fingerprint: row.fingerprint,
    status: row.status as AlertStatus | null,
    data: row.data ?? null,
    ts: iso(row.ts),
  };
}

export function toActionView(row: Selectable<ActionsTable>): ActionView {
  return {
    id: row.id,
    incidentId: row.incident_id,
    orgId: row.org_id,
    actionKind: row.action_kind,
    label: row.label,
    details: row.details,
    actorType: row.actor_type,
    actorRef: row.actor_ref,
    ts: iso(row.ts),
  };
}

export function toSloViolationView(row: Selectable<SloViolationsTable>): SloViolationView {
  return {
    id: row.id,
    incidentId: row.incident_id,
    orgId: row.org_id,
    sloId: row.slo_id,
    windowStart: iso(row.window_start),
    windowEnd: iso(row.window_end),
    errorBudgetConsumed: Number(row.error_budget_consumed),
    thresholdBreached: row.threshold_breached,
    details: row.details,
  };
}

/** One incident of one org; another org's incident is as absent as one that never existed. */
export async function findIncident(
  db: Kysely<Schema>,
  orgId: string,
  incidentId: string,
): Promise<IncidentView | null> {
  const row = await db
    .selectFrom('incidents')
    .selectAll()
    .where('org_id', '=', orgId)
    .where('id', '=', incidentId)
    .executeTakeFirst();
  return row ? toIncidentView(row) : null;
}

/**
 * The incident with the most recent DETAILS_LIST_LIMIT of its signals, actions and SLO violations,
 * each oldest first, and how many of each there are: one answer stays bounded however busy the incident.
 */
export async function incidentDetails(
  db: Kysely<Schema>,
  orgId: string,
  incidentId: string,
): Promise<IncidentDetails | null> {
  type ItemTable = 'incident_signals' | 'incident_actions' | 'incident_slo_violations';
  const ofIncident = (table: ItemTable) =>
    db.selectFrom(table).where('org_id', '=', orgId).where('incident_id', '=', incidentId);
  // Newest first to take the most recent; reversed below to serve them oldest first.
  const newest = (table: ItemTable) =>
    ofIncident(table).orderBy('version', 'desc').orderBy('id', 'desc').limit(DETAILS_LIST_LIMIT);
  const count = (table: ItemTable) => ofIncident(table).select((eb) => eb.fn.countAll<string>().as('n'));
  const [incident, signals, actions, sloViolations, counts] = await Promise.all([
    findIncident(db, orgId, incidentId),
    newest('incident_signals').selectAll('incident_signals').execute(),
    newest('incident_actions').selectAll('incident_actions').execute(),
    newest('incident_slo_violations').selectAll('incident_slo_violations').execute(),
    db
      .selectNoFrom([
        count('incident_signals').as('signals'),
        count('incident_actions').as('actions'),
        count('incident_slo_violations').as('sloViolations'),
      ])
      .executeTakeFirstOrThrow(),
  ]);
  if (!incident) return null;
  return {
    incident,
    signals: signals.reverse().map(toSignalView),
    actions: actions.reverse().map(toActionView),
    sloViolations: sloViolations.reverse().map(toSloViolationView),
    counts: {
      signals: Number(counts.signals),
      actions: Number(counts.actions),
      sloViolations: Number(counts.sloViolations),
    },
  };
}

type IncidentsBuilder = ExpressionBuilder<Schema, 'incidents'>;

/** A `%…%` ILIKE pattern that matches `text` literally. */
function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, '\\$&')}%`;
}

function filterConditions(
  eb: IncidentsBuilder,
  orgId: string,
  filter: IncidentFilter,
): Expression<SqlBool>[] {
  const conditions: Expression<SqlBool>[] = [eb('org_id', '=', orgId)];
  if (filter.projectId !== undefined) conditions.push(eb('project_id', '=', filter.projectId));
  if (filter.environment !== undefined) conditions.push(eb('environment', '=', filter.environment));
  if (filter.serviceName !== undefined) conditions.push(eb('service_name', '=', filter.serviceName));
  if (filter.status?.length) conditions.push(eb('status', 'in', filter.status));
  if (filter.severity?.length) conditions.push(eb('severity', 'in', filter.severity));
  if (filter.tag !== undefined)
    conditions.push(sql<SqlBool>`${sql.ref('tags')} @> array[${filter.tag}]::text[]`);
  if (filter.correlationKey !== undefined)
    conditions.push(sql<SqlBool>`${sql.ref('correlation_keys')} @> array[${filter.correlationKey}]::text[]`);
  if (filter.q !== undefined)
    conditions.push(sql<SqlBool>`${sql.ref('title')} ilike ${containsPattern(filter.q)}`);
  if (filter.createdFrom !== undefined) conditions.push(eb('created_at', '>=', new Date(filter.createdFrom)));
  if (filter.createdTo !== undefined) conditions.push(eb('created_at', '<=', new Date(filter.createdTo)));
  return conditions;
}

/**
 * The order of each sort, most relevant first for `desc`: newest first, or most severe (SEV1,
 * severity_rank 1) first and newest first among equals. Every order ends with the id, so it is total.
 */
function sortColumns(
  sort: IncidentSort,
  order: SortOrder,
): { column: 'severity_rank' | 'created_at' | 'updated_at' | 'id'; direction: SortOrder }[] {
  const flip = (direction: SortOrder): SortOrder => (direction === 'asc' ? 'desc' : 'asc');
  switch (sort) {
    case 'severity':
      return [
        { column: 'severity_rank', direction: flip(order) },
        { column: 'created_at', direction: order },
        { column: 'id', direction: order },
      ];
    case 'updatedAt':
      return [
        { column: 'updated_at', direction: order },
        { column: 'id', direction: order },
      ];
    case 'createdAt':
      return [
        { column: 'created_at', direction: order },
        { column: 'id', direction: order },
      ];
  }
}

/** Rows strictly after the keyset in the sort order: (a > x) or (a = x and b > y) or … */
function afterKeyset(
  eb: IncidentsBuilder,
  columns: ReturnType<typeof sortColumns>,
  keyset: Keyset,
): Expression<SqlBool> {
  const values = columns.map(({ column }) =>
    column === 'severity_rank' ? (keyset.rank ?? 0) : column === 'id' ? keyset.id : keyset.ts,
  );
  const alternatives: Expression<SqlBool>[] = [];
  for (let i = 0; i < columns.length; i++) {
    const equal = columns.slice(0, i).map(({ column }, j) => eb(column, '=', values[j]!));
    const { column, direction } = columns[i]!;
    alternatives.push(eb.and([...equal, eb(column, direction === 'asc' ? '>' : '<', values[i]!)]));
  }
  return eb.or(alternatives);
}

export interface ListQuery {
  filter: IncidentFilter;
  sort: IncidentSort;
  order: SortOrder;
  /** Rows per page; the query fetches one more, to tell whether another page follows. */
  limit: number;
  /** Keyset of the previous page's last row. */
  after?: Keyset;
}

/** The SQL of one page (as a query builder, so its plan can be inspected): rows plus `cursor_ts`. */
export function listIncidentsQuery(db: Kysely<Schema>, orgId: string, query: ListQuery) {
  const columns = sortColumns(query.sort, query.order);
  const tsColumn = query.sort === 'updatedAt' ? 'updated_at' : 'created_at';
  let select = db
    .selectFrom('incidents')
    .selectAll()
    // The exact sort timestamp (microseconds), for the next page's cursor.
    .select(
      sql<string>`to_char(${sql.ref(tsColumn)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as(
        'cursor_ts',
      ),
    )
    .where((eb) =>
      eb.and([
        ...filterConditions(eb, orgId, query.filter),
        ...(query.after ? [afterKeyset(eb, columns, query.after)] : []),
      ]),
    );
  for (const { column, direction } of columns) select = select.orderBy(column, direction);
  return select.limit(query.limit + 1);
}

/** One page of an org's incidents, filtered and sorted, after the given keyset. */
export async function listIncidents(
  db: Kysely<Schema>,
  orgId: string,
  query: ListQuery,
): Promise<IncidentPage> {
  const rows = await listIncidentsQuery(db, orgId, query).execute();
  const page = rows.slice(0, query.limit);
  const last = page.at(-1);
  return {
    incidents: page.map(toIncidentView),
    next:
      rows.length > query.limit && last
        ? {
            ...(query.sort === 'severity' ? { rank: Number(last.severity_rank) } : {}),
            ts: last.cursor_ts,
            id: last.id,
          }
        : null,
  };
}
