import type { Logger } from 'pino';
import { parseIncidentStreamName } from '../domain/streams.ts';
import type { EventStore } from '../eventstore/port.ts';
import type { Checkpointed, WebhookEndpoints } from './endpoints.ts';
import { Wakeup } from './wakeup.ts';

/** The incident category: other categories in the log (alert groups…) are never delivered. */
const INCIDENT_STREAMS = 'incident-';

export interface DeliveryFeedOptions {
  endpoints: WebhookEndpoints;
  store: EventStore;
  logger: Logger;
  /** Called after new delivery rows were queued. */
  onQueued: () => void;
  /** Every endpoint is caught up at least this often, whatever the subscription says. */
  sweepMs?: number;
}

/**
 * Turns the global log into delivery rows. The one subscription of the webhooks over the log
 * lives here: it only says which orgs have new events; each enabled endpoint of those orgs is then
 * caught up from its own checkpoint (WebhookEndpoints.catchUpBatch), so an endpoint registered later,
 * or enabled again, starts exactly where it should, and a process that dies loses nothing.
 */
export class DeliveryFeed {
  private readonly controller = new AbortController();
  private readonly wakeup = new Wakeup();
  /** Wakes a follower that waits for the first enabled endpoint. */
  private readonly endpointAdded = new Wakeup();
  /** Orgs with events since the last pass; 'all' after a start, a resubscription or a sweep. */
  private dirty: Set<string> | 'all' = 'all';
  private running: Promise<void>[] = [];
  private readonly sweepMs: number;

  constructor(private readonly options: DeliveryFeedOptions) {
    this.sweepMs = options.sweepMs ?? 5000;
  }

  start(): void {
    if (this.running.length > 0) return;
    this.running = [this.follow(), this.pass()];
  }

  async stop(): Promise<void> {
    this.controller.abort();
    this.wakeup.wake();
    this.endpointAdded.wake();
    await Promise.all(this.running);
  }

  /** Marks the org (or every org) as having events to queue. */
  notify(orgId?: string): void {
    if (orgId === undefined) this.dirty = 'all';
    else if (this.dirty !== 'all') this.dirty.add(orgId);
    this.wakeup.wake();
    this.endpointAdded.wake();
  }

  private async follow(): Promise<void> {
    const signal = this.controller.signal;
    let retryMs = 100;
    while (!signal.aborted) {
      try {
        // No endpoint, nothing to follow: a process without webhooks does not read the log.
        if (!(await this.anyEnabled())) {
          await this.endpointAdded.wait(this.sweepMs);
          continue;
        }
        const head = await this.options.store.headPosition(INCIDENT_STREAMS);
        // Whatever happened before the subscription began is found by the catch-up pass it triggers.
        this.notify();
        for await (const event of this.options.store.subscribe({
          fromPosition: head,
          streamPrefix: INCIDENT_STREAMS,
          signal,
        })) {
          retryMs = 100;
          const stream = parseIncidentStreamName(event.streamName);
          if (stream) this.notify(stream.orgId);
        }
      } catch (error) {
        if (signal.aborted) return;
        this.options.logger.warn({ err: error }, 'webhook log subscription dropped; resubscribing');
        await new Promise((resolve) => setTimeout(resolve, retryMs).unref());
        retryMs = Math.min(retryMs * 2, 5000);
      }
    }
  }

  private async anyEnabled(): Promise<boolean> {
    const row = await this.options.endpoints.db
      .selectFrom('webhook_endpoints')
      .select('id')
      .where('enabled', '=', true)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  private async pass(): Promise<void> {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      await this.wakeup.wait(this.sweepMs);
      if (signal.aborted) return;
      const orgs = this.dirty;
      this.dirty = new Set();
      try {
        let query = this.options.endpoints.db
          .selectFrom('webhook_endpoints')
          .select(['id', 'org_id', 'event_types', 'position'])
          .where('enabled', '=', true);
        // A timed-out wait is a sweep: every endpoint, in case a wakeup was lost.
        if (orgs !== 'all' && orgs.size > 0) query = query.where('org_id', 'in', [...orgs]);
        // One batch per checkpoint per round, so a long catch-up of one endpoint never delays the
        // others; endpoints of one org at one checkpoint share the read.
        let behind: Checkpointed[] = await query.execute();
        while (behind.length > 0 && !signal.aborted) {
          const groups = new Map<string, Checkpointed[]>();
          for (const endpoint of behind) {
            const key = `${endpoint.org_id} ${endpoint.position ?? ''}`;
            groups.set(key, [...(groups.get(key) ?? []), endpoint]);
          }
          behind = [];
          for (const group of groups.values()) {
            const result = await this.options.endpoints.catchUpBatch(group);
            if (!result) continue;
            if (result.added > 0) this.options.onQueued();
            behind.push(...result.moved);
          }
        }
      } catch (error) {
        this.notify(); // try everything again at the next pass
        this.options.logger.warn({ err: error }, 'queueing webhook deliveries failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, 500).unref());
      }
    }
  }
}
