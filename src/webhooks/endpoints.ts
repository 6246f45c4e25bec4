import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { uuidv7 } from 'uuidv7';
import type { Schema } from '../db/schema.ts';
import { EVENT_TYPES } from '../domain/incident/events.ts';
import { orgStreamPrefix, parseIncidentStreamName } from '../domain/streams.ts';
import { comparePositions, type EventStore, type RecordedEvent } from '../eventstore/port.ts';
import { newSecret } from './signing.ts';
import type { SecretBox } from './secrets.ts';
import { webhookDb, type Attempt, type WebhookDb, type WebhookTables } from './schema.ts';

export type EndpointRow = Selectable<WebhookTables['webhook_endpoints']>;
export type DeliveryRow = Selectable<WebhookTables['webhook_deliveries']>;
export type DeliveryStatus = DeliveryRow['status'];

/** WEBHOOKS.md: rotation keeps the old secret signing for this long. */
export const ROTATION_OVERLAP_MS = 24 * 3_600_000;

/** An endpoint as every read shows it: never the secret. */
export interface EndpointView {
  id: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  enabled: boolean;
  state: 'active' | 'failing' | 'disabled';
  createdAt: string;
  lastDeliveryAt: string | null;
  lastError: string | null;
}

export interface DeliveryView {
  id: string;
  eventId: string;
  eventType: string;
  incidentId: string;
  position: string;
  status: DeliveryStatus;
  attempts: Attempt[];
  nextAttemptAt: string | null;
}

export interface NewEndpoint {
  url: string;
  description?: string | undefined;
  eventTypes?: string[] | undefined;
  enabled?: boolean | undefined;
  fromPosition?: string | undefined;
}

export interface EndpointChanges {
  url?: string | undefined;
  description?: string | null | undefined;
  eventTypes?: string[] | undefined;
  enabled?: boolean | undefined;
}

export function endpointView(row: EndpointRow): EndpointView {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    eventTypes: row.event_types,
    enabled: row.enabled,
    state: !row.enabled ? 'disabled' : row.failing_since ? 'failing' : 'active',
    createdAt: row.created_at.toISOString(),
    lastDeliveryAt: row.last_delivery_at?.toISOString() ?? null,
    lastError: row.last_error,
  };
}

export function deliveryView(row: DeliveryRow): DeliveryView {
  return {
    id: row.id,
    eventId: row.event_id,
    eventType: row.event_type,
    incidentId: row.incident_id,
    position: row.position,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.status === 'pending' ? (row.next_attempt_at?.toISOString() ?? null) : null,
  };
}

/** The body every attempt of one delivery sends (WEBHOOKS.md "A delivery"). */
export function deliveryBody(orgId: string, incidentId: string, event: RecordedEvent): string {
  return JSON.stringify({
    type: event.type,
    timestamp: event.createdAt,
    data: {
      orgId,
      incidentId,
      streamName: event.streamName,
      eventId: event.eventId,
      version: event.version,
      position: event.position,
      createdAt: event.createdAt,
      data: event.data,
      metadata: event.metadata,
    },
  });
}

/** The org's incident events of a batch with the body each delivery of it sends; other categories are skipped. */
function deliverable(orgId: string, batch: RecordedEvent[]) {
  return batch.flatMap((event) => {
    const stream = parseIncidentStreamName(event.streamName);
    if (!stream || stream.orgId !== orgId) return [];
    return [{ event, incidentId: stream.incidentId, body: deliveryBody(orgId, stream.incidentId, event) }];
  });
}

/** The events this endpoint takes, as delivery rows. */
function deliveryRows(
  endpoint: Pick<EndpointRow, 'id' | 'org_id' | 'event_types'>,
  events: ReturnType<typeof deliverable>,
) {
  const wanted = new Set(endpoint.event_types);
  return events
    .filter(({ event }) => wanted.has(event.type))
    .map(({ event, incidentId, body }) => ({
      id: `msg_${uuidv7().replaceAll('-', '')}`,
      endpoint_id: endpoint.id,
      org_id: endpoint.org_id,
      event_id: event.eventId,
      event_type: event.type,
      incident_id: incidentId,
      position: event.position,
      body,
      status: 'pending' as const,
      next_attempt_at: sql<Date>`now()`,
    }));
}

/** What the feed needs of an endpoint to move its checkpoint. */
export type Checkpointed = Pick<EndpointRow, 'id' | 'org_id' | 'event_types' | 'position'>;

/** Events read from the log per statement when turning the log into delivery rows. */
const READ_BATCH = 500;

/** The endpoints of an org and their delivery log, in PostgreSQL (migration 0007_webhooks). */
export class WebhookEndpoints {
  readonly db: WebhookDb;

  constructor(
    db: Kysely<Schema>,
    private readonly store: EventStore,
    private readonly box: SecretBox,
  ) {
    this.db = webhookDb(db);
  }

  async create(orgId: string, input: NewEndpoint): Promise<{ endpoint: EndpointView; secret: string }> {
    const secret = newSecret();
    const position =
      input.fromPosition !== undefined
        ? input.fromPosition
        : await this.store.headPosition(orgStreamPrefix(orgId));
    const row = await this.db
      .insertInto('webhook_endpoints')
      .values({
        id: `wh_${uuidv7().replaceAll('-', '')}`,
        org_id: orgId,
        url: input.url,
        description: input.description ?? null,
        event_types: input.eventTypes ?? [...EVENT_TYPES],
        enabled: input.enabled ?? true,
        secret: this.box.seal(secret),
        position,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { endpoint: endpointView(row), secret };
  }

  async list(orgId: string): Promise<EndpointView[]> {
    const rows = await this.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('org_id', '=', orgId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(endpointView);
  }

  async row(orgId: string, id: string): Promise<EndpointRow | undefined> {
    return this.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('org_id', '=', orgId)
      .where('id', '=', id)
      .executeTakeFirst();
  }

  async get(orgId: string, id: string): Promise<EndpointView | null> {
    const row = await this.row(orgId, id);
    return row ? endpointView(row) : null;
  }

  async update(orgId: string, id: string, changes: EndpointChanges): Promise<EndpointView | null> {
    const row = await this.db
      .updateTable('webhook_endpoints')
      .set({
        ...(changes.url !== undefined ? { url: changes.url } : {}),
        ...(changes.description !== undefined ? { description: changes.description } : {}),
        ...(changes.eventTypes !== undefined ? { event_types: changes.eventTypes } : {}),
        ...(changes.enabled !== undefined ? { enabled: changes.enabled } : {}),
        // Enabled again by hand: resume from where it stopped, as a healthy endpoint.
        ...(changes.enabled === true ? { failing_since: null, disabled_reason: null } : {}),
        updated_at: sql<Date>`now()`,
      })
      .where('org_id', '=', orgId)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    // Resume at once, not at whatever retry time the deliveries had when the endpoint stopped.
    if (row && changes.enabled === true)
      await this.db
        .updateTable('webhook_deliveries')
        .set({ failures: 0, next_attempt_at: sql<Date>`now()` })
        .where('endpoint_id', '=', id)
        .where('status', '=', 'pending')
        .execute();
    return row ? endpointView(row) : null;
  }

  async delete(orgId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('webhook_endpoints')
      .where('org_id', '=', orgId)
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** A new secret; the current one keeps signing beside it for ROTATION_OVERLAP_MS. */
  async rotateSecret(orgId: string, id: string): Promise<string | null> {
    const secret = newSecret();
    const row = await this.db
      .updateTable('webhook_endpoints')
      .set((eb) => ({
        previous_secret: eb.ref('secret'),
        previous_secret_until: sql<Date>`now() + ${ROTATION_OVERLAP_MS} * interval '1 millisecond'`,
        secret: this.box.seal(secret),
        updated_at: sql<Date>`now()`,
      }))
      .where('org_id', '=', orgId)
      .where('id', '=', id)
      .returning('id')
      .executeTakeFirst();
    return row ? secret : null;
  }

  /** The secrets that sign an attempt now: the current one, and the previous one during its overlap. */
  signingSecrets(
    row: Pick<EndpointRow, 'secret' | 'previous_secret' | 'previous_secret_until'>,
    now: Date,
  ): string[] {
    const secrets = [this.box.open(row.secret)];
    if (row.previous_secret && row.previous_secret_until && row.previous_secret_until > now)
      secrets.push(this.box.open(row.previous_secret));
    return secrets;
  }

  /** Newest first; `beforeSeq` continues a page. */
  async deliveries(
    endpointId: string,
    options: { status?: DeliveryStatus | undefined; limit: number; beforeSeq?: string | undefined },
  ): Promise<{ deliveries: DeliveryView[]; lastSeq: string | null }> {
    let query = this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('endpoint_id', '=', endpointId)
      .orderBy('seq', 'desc')
      .limit(options.limit + 1);
    if (options.status) query = query.where('status', '=', options.status);
    if (options.beforeSeq) query = query.where('seq', '<', options.beforeSeq as never);
    const rows = await query.execute();
    const page = rows.slice(0, options.limit);
    return {
      deliveries: page.map(deliveryView),
      // int8: a string from pg, a number or bigint from PGlite.
      lastSeq: rows.length > options.limit ? String(page.at(-1)!.seq) : null,
    };
  }

  /** Queues one delivery again now (same row, so the same webhook-id); false when there is none. */
  async redeliver(endpointId: string, deliveryId: string): Promise<boolean> {
    const result = await this.db
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', failures: 0, next_attempt_at: sql<Date>`now()` })
      .where('endpoint_id', '=', endpointId)
      .where('id', '=', deliveryId)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Turns the next batch of the log after a checkpoint into delivery rows for every endpoint of
   * `group` (one org, all at that checkpoint: the log is read once for them) and moves their
   * checkpoints, in one transaction. Safe in several processes at once: a checkpoint only moves
   * from the value this call read, so a batch lands once per endpoint. Returns the endpoints it
   * moved, at their new checkpoint, or null when there was nothing after it.
   */
  async catchUpBatch(group: Checkpointed[]): Promise<{ moved: Checkpointed[]; added: number } | null> {
    const { org_id: orgId, position } = group[0]!;
    const batch = await this.store.readAll({
      fromPosition: position,
      streamPrefix: orgStreamPrefix(orgId),
      limit: READ_BATCH,
    });
    if (batch.length === 0) return null;
    const next = batch.at(-1)!.position;
    const events = deliverable(orgId, batch);
    return this.db.transaction().execute(async (trx) => {
      const claimed = await trx
        .updateTable('webhook_endpoints')
        .set({ position: next })
        .where(
          'id',
          'in',
          group.map((endpoint) => endpoint.id),
        )
        .where('org_id', '=', orgId)
        .where('enabled', '=', true)
        .where(sql<boolean>`position is not distinct from ${position}`)
        .returning('id')
        .execute();
      const ids = new Set(claimed.map((row) => row.id));
      const moved = group.filter((endpoint) => ids.has(endpoint.id)).map((e) => ({ ...e, position: next }));
      const rows = moved.flatMap((endpoint) => deliveryRows(endpoint, events));
      if (rows.length > 0) await insertDeliveries(trx, rows, 'skip');
      return { moved, added: rows.length };
    });
  }

  /**
   * Delivers again every matching event after `fromPosition` up to `toPosition` (inclusive), but not
   * beyond the endpoint's checkpoint (what lies after it is on its way anyway). Returns how many.
   */
  async replay(endpoint: EndpointRow, fromPosition: string, toPosition: string | undefined): Promise<number> {
    const until =
      toPosition === undefined || comparePositions(toPosition, endpoint.position) > 0
        ? endpoint.position
        : toPosition;
    let position: string | null = fromPosition;
    let queued = 0;
    while (until !== null && comparePositions(position, until) < 0) {
      const batch = await this.store.readAll({
        fromPosition: position,
        streamPrefix: orgStreamPrefix(endpoint.org_id),
        limit: READ_BATCH,
      });
      const inRange = batch.filter((event) => comparePositions(event.position, until) <= 0);
      const rows = deliveryRows(endpoint, deliverable(endpoint.org_id, inRange));
      if (rows.length > 0) await insertDeliveries(this.db, rows, 'requeue');
      queued += rows.length;
      if (inRange.length < batch.length || batch.length < READ_BATCH) break;
      position = batch.at(-1)!.position;
    }
    return queued;
  }

  /** Pending deliveries per endpoint (the backlog gauge). */
  async backlog(): Promise<{ endpointId: string; pending: number }[]> {
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .select(['endpoint_id', (eb) => eb.fn.countAll<string>().as('pending')])
      .where('status', '=', 'pending')
      .groupBy('endpoint_id')
      .execute();
    return rows.map((row) => ({ endpointId: row.endpoint_id, pending: Number(row.pending) }));
  }
}

/** `skip`: an event already queued for the endpoint stays as it is; `requeue`: it is queued again now. */
async function insertDeliveries(
  db: WebhookDb | Transaction<Schema & WebhookTables>,
  rows: ReturnType<typeof deliveryRows>,
  existing: 'skip' | 'requeue',
): Promise<void> {
  await db
    .insertInto('webhook_deliveries')
    .values(rows)
    .onConflict((conflict) =>
      existing === 'skip'
        ? conflict.columns(['endpoint_id', 'event_id']).doNothing()
        : conflict
            .columns(['endpoint_id', 'event_id'])
            .doUpdateSet({ status: 'pending', failures: 0, next_attempt_at: sql<Date>`now()` }),
    )
    .execute();
}
