import { appendChained } from '../audit/append.ts';
import { EMPTY_HEAD, storedHash, type ChainHead } from '../audit/chain.ts';
import { randomUUID } from 'node:crypto';
import {
  ALERT_GROUP_SCHEMA_VERSION,
  alertGroupHash,
  decideAlertGroup,
  evolveAlertGroup,
  initialAlertGroupState,
  parseAlertGroupEvent,
  type AlertGroupEvent,
  type AlertGroupState,
  type GroupNotification,
  type IncidentView,
  type IngestOptions,
  type PlannedIncidentWrite,
} from '../domain/alert-group/index.ts';
import { alertGroupStreamName, incidentStreamName, newIncidentId } from '../domain/streams.ts';
import { WrongExpectedVersion, type EventStore } from '../eventstore/port.ts';
import { conflictBackoff, sleep } from '../retry.ts';
import { ConcurrencyRetriesExhausted, type CommandContext, type IncidentCommands } from './index.ts';

/** What a notification did to its group's incident. */
export interface IngestResult {
  incidentId: string;
  created: boolean;
  /** The incident's version and last position after the notification (unchanged for a repeat). */
  version: number;
  position: string;
}

export interface AlertGroupCommandsOptions {
  store: EventStore;
  commands: IncidentCommands;
  maxRetries?: number;
  clock?: () => Date;
}

/** How many of an incident's last events are searched for its latest resolution. */
const RESOLVED_LOOKBACK = 50;

type IngestContext = Pick<CommandContext, 'orgId' | 'actor' | 'correlationId'>;

/**
 * Load the group → decide → append to the group with its expected version → run the planned
 * incident write. The group's append is the claim: of N concurrent deliveries one wins and the
 * others re-decide on its state, finding the alerts recorded. The incident write is planned in the
 * group's event with fixed ids, so whoever loads the group next lands it if its author died first.
 */
export class AlertGroupCommands {
  private readonly store: EventStore;
  private readonly commands: IncidentCommands;
  private readonly maxRetries: number;
  private readonly clock: () => Date;

  constructor(options: AlertGroupCommandsOptions) {
    this.store = options.store;
    this.commands = options.commands;
    this.maxRetries = options.maxRetries ?? 30;
    this.clock = options.clock ?? (() => new Date());
  }

  /** One notification of one group; null when it concerns no incident (a resolution with none open). */
  async ingest(
    ctx: IngestContext,
    notification: GroupNotification,
    options: IngestOptions,
  ): Promise<IngestResult | null> {
    const streamName = alertGroupStreamName(ctx.orgId, alertGroupHash(notification.groupKey));
    for (let attempt = 0; ; attempt++) {
      const group = await this.loadGroup(streamName);
      const incident = await this.currentIncident(ctx, group.state);
      const events = decideAlertGroup(notification, options, group.state, incident?.view ?? null, {
        now: this.clock().toISOString(),
        newIncidentId: newIncidentId(),
        eventId: randomUUID(),
        detectedBy: ctx.actor.ref,
      });
      if (events.length === 0) return incident && { ...incident.result, created: false };
      try {
        await this.appendToGroup(ctx, streamName, events, group.head);
      } catch (error) {
        if (!(error instanceof WrongExpectedVersion)) throw error;
        if (attempt >= this.maxRetries)
          throw new ConcurrencyRetriesExhausted(`gave up on ${streamName} after ${attempt + 1} lost races`);
        await sleep(conflictBackoff.delayMs(attempt));
        continue;
      }
      const event = events[0]!;
      const landed = await this.commands.executePlanned(ctx, event.data.plan);
      return {
        incidentId: landed.incidentId,
        version: landed.version,
        position: landed.position,
        created: event.data.opened,
      };
    }
  }

  /** Events v2 `acknowledge`: OPEN → INVESTIGATING on the group's active incident; null (dropped) without one. */
  async acknowledge(ctx: IngestContext, groupKey: string): Promise<IngestResult | null> {
    const group = await this.loadGroup(alertGroupStreamName(ctx.orgId, alertGroupHash(groupKey)));
    const incident = await this.currentIncident(ctx, group.state);
    if (incident === null) return null;
    const incidentId = incident.view.incidentId;
    if (incident.view.status === 'RESOLVED' || incident.view.status === 'CANCELLED') return null;
    const result = await this.commands.execute(ctx, incidentId, {
      type: 'IngestAlerts',
      acknowledge: true,
      signals: [],
    });
    return { incidentId, created: false, version: result.version, position: result.position };
  }

  /** The one place alert-group events are appended: chained onto the group's head as it was read. */
  private async appendToGroup(
    ctx: IngestContext,
    streamName: string,
    events: AlertGroupEvent[],
    head: ChainHead,
  ): Promise<void> {
    const occurredAt = this.clock().toISOString();
    await appendChained(
      this.store,
      streamName,
      head,
      events.map((event) => ({
        eventId: randomUUID(),
        type: event.type,
        data: event.data,
        metadata: {
          orgId: ctx.orgId,
          actor: ctx.actor,
          occurredAt,
          correlationId: ctx.correlationId,
          schemaVersion: ALERT_GROUP_SCHEMA_VERSION,
        },
      })),
    );
  }

  private async loadGroup(streamName: string): Promise<{ state: AlertGroupState; head: ChainHead }> {
    let state = initialAlertGroupState;
    let head = EMPTY_HEAD;
    for (const recorded of await this.store.readStream(streamName)) {
      state = evolveAlertGroup(state, parseAlertGroupEvent(recorded.type, recorded.data));
      head = { version: recorded.version, hash: storedHash(recorded) };
    }
    return { state, head };
  }

  /**
   * The group's incident as it is now, after making sure the group's last planned write landed (its
   * author may have died between the two appends): the next loader runs it again, once.
   */
  private async currentIncident(
    ctx: IngestContext,
    group: AlertGroupState,
  ): Promise<{ view: IncidentView; result: Omit<IngestResult, 'created'> } | null> {
    const plan = group.lastPlan;
    if (group.incidentId === null || plan === null) return null;
    const streamName = incidentStreamName(ctx.orgId, group.incidentId);
    let loaded = await this.commands.load(streamName);
    if (!(await this.hasLanded(streamName, loaded, plan))) {
      await this.commands.executePlanned(ctx, plan);
      loaded = await this.commands.load(streamName);
    }
    if (loaded.state === null || loaded.position === null)
      throw new Error(`alert group names incident ${group.incidentId}, which has no events`);
    const resolvedAt = loaded.state.status === 'RESOLVED' ? await this.resolvedAt(streamName) : null;
    const view: IncidentView = {
      incidentId: group.incidentId,
      status: loaded.state.status,
      severity: loaded.state.severity,
      version: loaded.version,
      resolvedAt,
    };
    return {
      view,
      result: { incidentId: group.incidentId, version: loaded.version, position: loaded.position },
    };
  }

  private async hasLanded(
    streamName: string,
    loaded: Awaited<ReturnType<IncidentCommands['load']>>,
    plan: PlannedIncidentWrite,
  ): Promise<boolean> {
    if (loaded.landed.has(plan.eventId)) return true;
    // Folded from a snapshot taken past the plan's version: look at the events themselves.
    const snapshotVersion = loaded.version - loaded.landed.size;
    if (snapshotVersion <= plan.afterVersion) return false;
    const after = await this.store.readStream(streamName, { fromVersion: plan.afterVersion + 1 });
    return after.some((event) => event.eventId === plan.eventId);
  }

  /** When the incident was last resolved: its newest INCIDENT_RESOLVED, looked for among the last events. */
  private async resolvedAt(streamName: string): Promise<string | null> {
    const recent = await this.store.readStream(streamName, {
      direction: 'backwards',
      limit: RESOLVED_LOOKBACK,
    });
    const resolved = recent.find((event) => event.type === 'INCIDENT_RESOLVED');
    const occurredAt = resolved?.metadata.occurredAt;
    return typeof occurredAt === 'string' ? occurredAt : null;
  }
}
