import { sql, type Kysely } from 'kysely';
import type { Schema } from '../../db/schema.ts';

export interface HeldBack {
  /** Events committed but not yet readable: behind the horizon while an older transaction runs. */
  events: number;
  /** Age of the oldest of them (0 when there are none). */
  seconds: number;
}

/**
 * The events readers do not see yet: readAll serves only `tx_id < pg_snapshot_xmin(…)` (see
 * PostgresEventStore), so one long transaction anywhere holds back everything committed after it.
 */
export async function heldBackEvents(db: Kysely<Schema>): Promise<HeldBack> {
  const { rows } = await sql<{ events: string; seconds: string | null }>`
    select count(*)::text as events, extract(epoch from clock_timestamp() - min(created_at))::text as seconds
    from its_events where tx_id >= pg_snapshot_xmin(pg_current_snapshot())`.execute(db);
  const row = rows[0];
  return { events: Number(row?.events ?? 0), seconds: Math.max(0, Number(row?.seconds ?? 0)) };
}
