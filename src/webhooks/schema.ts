import type { ColumnType, Kysely } from 'kysely';
import type { Schema } from '../db/schema.ts';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

/** One attempt as the delivery log shows it (WEBHOOKS.md). */
export interface Attempt {
  at: string;
  durationMs: number;
  statusCode?: number;
  error?: string;
  responseSnippet?: string;
}

/** The tables of migration 0007_webhooks. */
export type WebhookTables = {
  webhook_endpoints: {
    id: string;
    org_id: string;
    url: string;
    description: string | null;
    event_types: string[];
    enabled: boolean;
    /** `whsec_…` as given, or sealed (secrets.ts) when WEBHOOK_SECRET_KEY is set. */
    secret: string;
    previous_secret: string | null;
    previous_secret_until: NullableTimestamp;
    /** The endpoint's checkpoint in the global log (exclusive); null = from the start. */
    position: string | null;
    disabled_reason: string | null;
    failing_since: NullableTimestamp;
    last_delivery_at: NullableTimestamp;
    last_error: string | null;
    lease_owner: string | null;
    lease_until: NullableTimestamp;
    created_at: Timestamp;
    updated_at: Timestamp;
  };
  webhook_deliveries: {
    /** The webhook-id header of every attempt. */
    id: string;
    endpoint_id: string;
    org_id: string;
    /** Enqueue order, which is global-log order per endpoint. */
    seq: ColumnType<string, never, never>;
    event_id: string;
    event_type: string;
    incident_id: string;
    position: string;
    /** The exact bytes every attempt signs and sends. */
    body: string;
    status: 'pending' | 'succeeded' | 'failed';
    attempts: ColumnType<Attempt[], string | undefined, string>;
    /** Failed attempts since the delivery was last queued: the place in the retry schedule. */
    failures: ColumnType<number, number | undefined, number>;
    next_attempt_at: NullableTimestamp;
    created_at: Timestamp;
  };
};

export type WebhookDb = Kysely<Schema & WebhookTables>;

export const webhookDb = (db: Kysely<Schema>): WebhookDb => db.withTables<WebhookTables>();
