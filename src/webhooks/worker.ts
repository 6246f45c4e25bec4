import { sql } from 'kysely';
import type { Logger } from 'pino';
import { uuidv7 } from 'uuidv7';
import type { AddressGuard } from './address-guard.ts';
import { newAgents, postDelivery, ATTEMPT_TIMEOUT_MS, type AttemptOutcome } from './attempt.ts';
import type { DeliveryRow, EndpointRow, WebhookEndpoints } from './endpoints.ts';
import type { WebhookMetrics } from './metrics.ts';
import { DISABLE_AFTER_MS, RETRY_SCHEDULE_MS, nextRetryDelay } from './retry.ts';
import type { Attempt } from './schema.ts';
import { signedHeaders } from './signing.ts';
import { Wakeup } from './wakeup.ts';

export interface DeliveryWorkerOptions {
  endpoints: WebhookEndpoints;
  guard: AddressGuard;
  metrics: WebhookMetrics;
  logger: Logger;
  /** Endpoints this process delivers to at once (the shared pool); each gets one attempt at a time. */
  concurrency?: number;
  /** Deliveries read per lease renewal. */
  batchSize?: number;
  /** How long a claim on an endpoint lasts before another process may take it over. */
  leaseMs?: number;
  /** Looks for due deliveries at least this often (other processes queue them, retries fall due). */
  pollMs?: number;
  retryScheduleMs?: readonly number[];
  disableAfterMs?: number;
  timeoutMs?: number;
}

/** Time kept free at the end of a lease for recording the last attempt. */
const LEASE_MARGIN_MS = 1000;

interface Result {
  delivery: DeliveryRow;
  outcome: AttemptOutcome;
  at: Date;
}

/**
 * Delivers the queued rows. Per endpoint, one process at a time holds a lease on it and attempts
 * its pending deliveries one after another in queue (global-log) order; a failed delivery blocks
 * the ones behind it until it succeeds or is `failed`, which keeps the order. Endpoints run side
 * by side in a pool of `concurrency`, so a slow one holds up only itself.
 */
export class DeliveryWorker {
  private readonly owner = `worker_${uuidv7()}`;
  private readonly agents = newAgents();
  private readonly wakeup = new Wakeup();
  private readonly busy = new Map<string, Promise<void>>();
  private stopped = false;
  private loop: Promise<void> | null = null;
  private readonly concurrency: number;
  private readonly batchSize: number;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly schedule: readonly number[];
  private readonly disableAfterMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: DeliveryWorkerOptions) {
    this.concurrency = options.concurrency ?? 16;
    this.batchSize = options.batchSize ?? 100;
    this.timeoutMs = options.timeoutMs ?? ATTEMPT_TIMEOUT_MS;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.pollMs = options.pollMs ?? 1000;
    this.schedule = options.retryScheduleMs ?? RETRY_SCHEDULE_MS;
    this.disableAfterMs = options.disableAfterMs ?? DISABLE_AFTER_MS;
    if (this.leaseMs < this.timeoutMs + 2 * LEASE_MARGIN_MS)
      throw new RangeError('a lease must outlast an attempt by two seconds');
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Something was queued: look now rather than at the next poll. */
  wake(): void {
    this.wakeup.wake();
  }

  /** Lets attempts in flight finish and record, then stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeup.wake();
    await this.loop;
    await Promise.all(this.busy.values());
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private get db() {
    return this.options.endpoints.db;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const free = this.concurrency - this.busy.size;
        const claimed = free > 0 ? await this.claim(free) : [];
        failures = 0;
        for (const endpoint of claimed) {
          const running = this.deliver(endpoint)
            .catch((error: unknown) =>
              this.options.logger.warn(
                { err: error, endpointId: endpoint.id },
                'webhook delivery pass failed',
              ),
            )
            .finally(() => {
              this.busy.delete(endpoint.id);
              this.wakeup.wake();
            });
          this.busy.set(endpoint.id, running);
        }
        if (claimed.length === free && free > 0) continue;
      } catch (error) {
        failures += 1;
        if (failures === 1)
          this.options.logger.warn({ err: error }, 'claiming webhook endpoints failed; retrying');
      }
      await this.wakeup.wait(failures > 0 ? Math.min(this.pollMs * 2 ** failures, 5000) : this.pollMs);
    }
  }

  /** Leases up to `count` endpoints whose first pending delivery is due and that nobody else holds. */
  private async claim(count: number): Promise<EndpointRow[]> {
    const busy = [...this.busy.keys()];
    const { rows } = await sql<EndpointRow>`
      update webhook_endpoints set lease_owner = ${this.owner},
        lease_until = now() + ${this.leaseMs} * interval '1 millisecond'
      where id in (
        select e.id from webhook_endpoints e
        where e.enabled and (e.lease_until is null or e.lease_until < now())
          and not (e.id = any(${busy}::text[]))
          and (select d.next_attempt_at from webhook_deliveries d
               where d.endpoint_id = e.id and d.status = 'pending' order by d.seq limit 1) <= now()
        order by e.lease_until nulls first
        limit ${count}
        for update skip locked)
      returning *`.execute(this.db);
    return rows;
  }

  /** Renews the lease and re-reads the endpoint (its URL, secrets, enabled); null once it is not ours. */
  private async renew(id: string): Promise<EndpointRow | null> {
    const row = await this.db
      .updateTable('webhook_endpoints')
      .set({ lease_until: sql<Date>`now() + ${this.leaseMs} * interval '1 millisecond'` })
      .where('id', '=', id)
      .where('lease_owner', '=', this.owner)
      .where('enabled', '=', true)
      .returningAll()
      .executeTakeFirst();
    return row ?? null;
  }

  private async release(id: string): Promise<void> {
    await this.db
      .updateTable('webhook_endpoints')
      .set({ lease_owner: null, lease_until: null })
      .where('id', '=', id)
      .where('lease_owner', '=', this.owner)
      .execute();
  }

  /** The endpoint's next pending deliveries in queue order, after `afterSeq` when given. */
  private pending(endpointId: string, afterSeq: string | null): Promise<DeliveryRow[]> {
    let query = this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('endpoint_id', '=', endpointId)
      .where('status', '=', 'pending')
      .orderBy('seq')
      .limit(this.batchSize);
    if (afterSeq !== null) query = query.where('seq', '>', afterSeq as never);
    return query.execute();
  }

  /**
   * Attempts the endpoint's due deliveries in order until one fails, none is due, or the lease runs
   * short. The next batch is read, the lease renewed and the results recorded while attempts go
   * on; every record is written before the lease is released.
   */
  private async deliver(claimed: EndpointRow): Promise<void> {
    let endpoint: EndpointRow | null = claimed;
    let leasedAt = Date.now();
    let recording = Promise.resolve();
    const recordLater = (target: EndpointRow, results: Result[]) => {
      if (results.length > 0) recording = recording.then(() => this.record(target, results));
    };
    try {
      let next = this.pending(claimed.id, null);
      while (endpoint && !this.stopped) {
        const due = await next;
        if (due.length === 0) break;
        const renewing = this.renew(endpoint.id);
        next = this.pending(endpoint.id, String(due.at(-1)!.seq));
        let results: Result[] = [];
        let lastAttempted: string | null = null;
        let blocked = false;
        let flushedAt = Date.now();
        for (const delivery of due) {
          const at = new Date();
          // Keep a margin so an attempt never outlives the lease it started under.
          if (at.getTime() + this.timeoutMs + LEASE_MARGIN_MS > leasedAt + this.leaseMs || this.stopped) {
            // The rest of this batch comes again after the lease is renewed.
            // (After what was attempted: its results may not be written yet.)
            if (lastAttempted !== null) next = this.pending(endpoint.id, lastAttempted);
            else next = recording.then(() => this.pending(endpoint!.id, null));
            break;
          }
          if (delivery.next_attempt_at && delivery.next_attempt_at > at) {
            blocked = true;
            break;
          }
          const outcome = await this.attempt(endpoint, delivery, at);
          lastAttempted = String(delivery.seq);
          results.push({ delivery, outcome, at });
          if (!outcome.ok) {
            blocked = true;
            break;
          }
          // Record now and then, so the log shows progress and a crash repeats little.
          if (Date.now() - flushedAt > 250) {
            recordLater(endpoint, results);
            results = [];
            flushedAt = Date.now();
          }
        }
        recordLater(endpoint, results);
        const renewed = await renewing;
        if (blocked) break;
        endpoint = renewed;
        leasedAt = Date.now();
      }
    } finally {
      await recording.finally(() => this.release(claimed.id));
    }
  }

  private async attempt(endpoint: EndpointRow, delivery: DeliveryRow, at: Date): Promise<AttemptOutcome> {
    let secrets: string[];
    try {
      secrets = this.options.endpoints.signingSecrets(endpoint, at);
    } catch (error) {
      return { ok: false, error: error instanceof Error ? error.message : String(error), durationMs: 0 };
    }
    const headers = signedHeaders(secrets, delivery.id, Math.floor(at.getTime() / 1000), delivery.body);
    const outcome = await postDelivery(endpoint.url, headers, delivery.body, {
      guard: this.options.guard,
      agents: this.agents,
      timeoutMs: this.timeoutMs,
    });
    this.options.metrics.attempted(outcome.durationMs / 1000);
    return outcome;
  }

  /** Writes the attempts and what follows from them (next attempt, failed, endpoint state) in one transaction. */
  private async record(endpoint: EndpointRow, results: Result[]): Promise<void> {
    if (results.length === 0) return;
    const updates = results.map(({ delivery, outcome, at }) => {
      const attempt: Attempt = {
        at: at.toISOString(),
        durationMs: outcome.durationMs,
        ...(outcome.statusCode !== undefined ? { statusCode: outcome.statusCode } : {}),
        ...(outcome.error !== undefined ? { error: outcome.error } : {}),
        ...(outcome.responseSnippet !== undefined ? { responseSnippet: outcome.responseSnippet } : {}),
      };
      if (outcome.ok)
        return { id: delivery.id, status: 'succeeded', attempt, failures: delivery.failures, next: null };
      const failures = delivery.failures + 1;
      const delay = nextRetryDelay(failures, this.schedule);
      return {
        id: delivery.id,
        status: delay === null ? 'failed' : 'pending',
        attempt,
        failures,
        next: delay === null ? null : new Date(at.getTime() + delay).toISOString(),
      };
    });
    const last = results.at(-1)!;
    const gone = last.outcome.statusCode === 410;
    const lastSuccess = results.findLast(({ outcome }) => outcome.ok);
    const failingSince = last.outcome.ok ? null : ((lastSuccess ? null : endpoint.failing_since) ?? last.at);
    const tooLong =
      failingSince !== null && last.at.getTime() - failingSince.getTime() >= this.disableAfterMs;
    const disabledReason = gone
      ? 'disabled: the receiver answered 410 Gone'
      : tooLong
        ? `disabled: every delivery failed for ${Math.round(this.disableAfterMs / 3_600_000)} h`
        : null;
    await this.db.transaction().execute(async (trx) => {
      await sql`
        update webhook_deliveries d set status = u.status, attempts = d.attempts || jsonb_build_array(u.attempt),
          failures = u.failures, next_attempt_at = u.next
        from jsonb_to_recordset(${JSON.stringify(updates)}::jsonb)
          as u(id text, status text, attempt jsonb, failures integer, next timestamptz)
        where d.id = u.id`.execute(trx);
      await trx
        .updateTable('webhook_endpoints')
        .set({
          failing_since: failingSince,
          ...(lastSuccess ? { last_delivery_at: lastSuccess.at } : {}),
          last_error: last.outcome.ok ? null : (disabledReason ?? last.outcome.error ?? 'failed'),
          ...(disabledReason ? { enabled: false, disabled_reason: disabledReason } : {}),
        })
        .where('id', '=', endpoint.id)
        .execute();
    });
    endpoint.failing_since = failingSince;
    for (const update of updates)
      this.options.metrics.delivered(
        update.status === 'succeeded' ? 'succeeded' : update.status === 'failed' ? 'failed' : 'retrying',
      );
    if (disabledReason)
      this.options.logger.warn({ endpointId: endpoint.id }, 'webhook endpoint %s', disabledReason);
  }
}
