import type { ColumnType, GeneratedAlways } from 'kysely';

/** Timestamps: written as Date or ISO string, read back as Date. */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null, Date | string | null>;
/** int8 columns arrive as strings (see database.ts); write them as numbers or strings. */
type Int8 = ColumnType<string, number | string | bigint, number | string | bigint>;

export interface EventsTable {
  global_seq: ColumnType<string, never, never>;
  tx_id: ColumnType<string, never, never>;
  stream_name: string;
  stream_group: string;
  version: Int8;
  event_id: string;
  type: string;
  data: unknown;
  metadata: unknown;
  created_at: ColumnType<Date, never, never>;
}

export interface ExternalRef {
  system: string;
  key: string;
  url: string | null;
  linkedAt: string;
}

export interface IncidentsTable {
  org_id: string;
  id: string;
  project_id: string;
  title: string;
  description: string | null;
  service_name: string;
  status: string;
  severity: string;
  severity_rank: number;
  environment: string;
  detected_by: string | null;
  primary_signal_id: string | null;
  runbook_path: string | null;
  external_refs: ColumnType<ExternalRef[], string, string>;
  correlation_keys: string[];
  tags: string[];
  created_by_type: string;
  created_by_ref: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  acknowledged_at: NullableTimestamp;
  mitigated_at: NullableTimestamp;
  resolved_at: NullableTimestamp;
  cancelled_at: NullableTimestamp;
  version: number;
  /** Seconds from creation to acknowledged_at / resolved_at: computed by PostgreSQL (migration 0008), never written. */
  time_to_acknowledge: GeneratedAlways<number | null>;
  time_to_resolve: GeneratedAlways<number | null>;
}

export interface SignalsTable {
  org_id: string;
  incident_id: string;
  id: string;
  signal_type: string;
  source: string;
  summary: string;
  service_name: string | null;
  environment: string | null;
  correlation_key: string | null;
  trace_id: string | null;
  /** Migration 0005: signal schema version 2. */
  fingerprint: string | null;
  status: string | null;
  data: ColumnType<Record<string, unknown> | null, string | null, string | null>;
  ts: Timestamp;
  version: number;
}

export interface ActionsTable {
  org_id: string;
  incident_id: string;
  id: string;
  action_kind: string;
  label: string;
  details: string | null;
  actor_type: string;
  actor_ref: string;
  ts: Timestamp;
  version: number;
}

export interface SloViolationsTable {
  org_id: string;
  incident_id: string;
  id: string;
  slo_id: string;
  window_start: Timestamp;
  window_end: Timestamp;
  error_budget_consumed: number;
  threshold_breached: boolean;
  details: string | null;
  version: number;
}

export interface ProjectionCheckpointsTable {
  name: string;
  position: string | null;
  events_processed: ColumnType<string, number | string | undefined, number | string>;
  state: ColumnType<string, string | undefined, string>;
  last_error: string | null;
  error_position: string | null;
  rebuild_requested_at: NullableTimestamp;
  /** Progress of the rebuild in progress (or the last one): events replayed, of about this many. */
  rebuild_done: ColumnType<string, number | string | undefined, number | string>;
  rebuild_total: ColumnType<string, number | string | undefined, number | string>;
  /** When the last rebuild swapped its tables in. */
  rebuilt_at: NullableTimestamp;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface IdempotencyKeysTable {
  org_id: string;
  key: string;
  request_hash: string;
  reservation: ColumnType<unknown, string, string>;
  response: ColumnType<unknown, string | null, string | null>;
  created_at: ColumnType<Date, never, never>;
}

export interface IncidentSnapshotsTable {
  stream_name: string;
  version: Int8;
  position: string;
  schema_version: number;
  state: ColumnType<unknown, string, string>;
}

export interface Schema {
  its_events: EventsTable;
  incidents: IncidentsTable;
  incident_signals: SignalsTable;
  incident_actions: ActionsTable;
  incident_slo_violations: SloViolationsTable;
  projection_checkpoints: ProjectionCheckpointsTable;
  idempotency_keys: IdempotencyKeysTable;
  incident_snapshots: IncidentSnapshotsTable;
}
