import { z } from 'zod';
import type { Database } from '../db/database.ts';
import { Severity, Status, type ExistingIncident } from '../domain/incident/index.ts';

/** Bump when IncidentState changes shape: older snapshots are then ignored. */
const SNAPSHOT_SCHEMA_VERSION = 1;

/** The incident as a snapshot stores it (`IncidentState` of an incident that exists). */
const SnapshotState: z.ZodType<ExistingIncident> = z.strictObject({
  status: Status,
  severity: Severity,
  projectId: z.string(),
  title: z.string(),
  description: z.string().nullable(),
  serviceName: z.string(),
  environment: z.string(),
  detectedBy: z.string().nullable(),
  runbookPath: z.string().nullable(),
  tags: z.array(z.string()),
  correlationKeys: z.array(z.string()),
  tickets: z.array(z.strictObject({ system: z.string(), key: z.string() })),
  signalCount: z.number().int(),
});

export interface Snapshot {
  state: ExistingIncident;
  /** The stream version and global position of the last event folded into it. */
  version: number;
  position: string;
}

/** Snapshots of incident streams (`incident_snapshots`): only a cache, so failing to read or write one is no error. */
export class IncidentSnapshots {
  constructor(private readonly database: Database) {}

  /** The stream's snapshot; undefined when it has none, or none of this schema version that parses. */
  async latest(streamName: string): Promise<Snapshot | undefined> {
    const row = await this.database.db
      .selectFrom('incident_snapshots')
      .select(['version', 'position', 'state'])
      .where('stream_name', '=', streamName)
      .where('schema_version', '=', SNAPSHOT_SCHEMA_VERSION)
      .executeTakeFirst();
    const state = row && SnapshotState.safeParse(row.state);
    if (!row || !state?.success) return undefined;
    return { state: state.data, version: Number(row.version), position: row.position };
  }

  /** Replaces the stream's snapshot; false when it could not be written. */
  async save(snapshot: Snapshot & { streamName: string }): Promise<boolean> {
    const row = {
      stream_name: snapshot.streamName,
      version: snapshot.version,
      position: snapshot.position,
      schema_version: SNAPSHOT_SCHEMA_VERSION,
      state: JSON.stringify(snapshot.state),
    };
    return this.database.db
      .insertInto('incident_snapshots')
      .values(row)
      .onConflict((conflict) => conflict.column('stream_name').doUpdateSet(row))
      .execute()
      .then(
        () => true,
        () => false,
      );
  }
}
