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
import {
  ConcurrencyRetriesExhausted,
  conflictBackoff,
  type CommandContext,
  type IncidentCommands,
} from './index.ts';

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

/** How far past a plan's decided-on version its first event is looked for before it is simply run again. */
const LANDED_LOOKAHEAD = 50;

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
      if (group.state.lastPlan) await this.land(ctx, group.state.lastPlan);
      const incident = group.state.incidentId
        ? await this.incidentView(ctx.orgId, group.state.incidentId)
        : null;
      const events = decideAlertGroup(notification, options, group.state, incident?.view ?? null, {
        now: this.clock().toISOString(),
        newIncidentId: newIncidentId(),
        eventId: randomUUID(),
        detectedBy: ctx.actor.ref,
      });
      if (events.length === 0) return incident && { ...incident.result, created: false };
      try {
        await this.appendToGroup(ctx, streamName, events, group.version);
      } catch (error) {
        if (!(error instanceof WrongExpectedVersion)) throw error;
        if (attempt >= this.maxRetries)
          throw new ConcurrencyRetriesExhausted(`gave up on ${streamName} after ${attempt + 1} lost races`);
        await conflictBackoff(attempt);
        continue;
      }
      const event = events[0]!;
      const landed = await this.land(ctx, event.data.plan);
      return { ...landed, created: event.data.opened };
    }
  }

  /** Events v2 `acknowledge`: OPEN → INVESTIGATING on the group's active incident; null (dropped) without one. */
  async acknowledge(ctx: IngestContext, groupKey: string): Promise<IngestResult | null> {
    const group = await this.loadGroup(alertGroupStreamName(ctx.orgId, alertGroupHash(groupKey)));
    if (group.state.lastPlan) await this.land(ctx, group.state.lastPlan);
    const incidentId = group.state.incidentId;
    if (incidentId === null) return null;
    const incident = await this.incidentView(ctx.orgId, incidentId);
    if (incident.view.status === 'RESOLVED' || incident.view.status === 'CANCELLED') return null;
    const result = await this.commands.execute(ctx, incidentId, {
      type: 'IngestAlerts',
      acknowledge: true,
      signals: [],
    });
    return { incidentId, created: false, version: result.version, position: result.position };
  }

  /** The one place alert-group events are appended (the audit hash chain hooks in here). */
  private async appendToGroup(
    ctx: IngestContext,
    streamName: string,
    events: AlertGroupEvent[],
    expectedVersion: number,
  ): Promise<void> {
    const occurredAt = this.clock().toISOString();
    await this.store.append(
      streamName,
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
      expectedVersion === -1 ? 'no_stream' : expectedVersion,
    );
  }

  private async loadGroup(streamName: string): Promise<{ state: AlertGroupState; version: number }> {
    let state = initialAlertGroupState;
    let version = -1;
    for (const recorded of await this.store.readStream(streamName)) {
      state = evolveAlertGroup(state, parseAlertGroupEvent(recorded.type, recorded.data));
      version = recorded.version;
    }
    return { state, version };
  }

  /** Makes sure a planned incident write has landed, running it when it has not. */
  private async land(ctx: IngestContext, plan: PlannedIncidentWrite): Promise<Omit<IngestResult, 'created'>> {
    const streamName = incidentStreamName(ctx.orgId, plan.incidentId);
    const after = await this.store.readStream(streamName, {
      fromVersion: plan.afterVersion + 1,
      limit: LANDED_LOOKAHEAD,
    });
    if (after.some((event) => event.eventId === plan.eventId)) {
      const [head] = await this.store.readStream(streamName, { direction: 'backwards', limit: 1 });
      return { incidentId: plan.incidentId, version: head!.version, position: head!.position };
    }
    const result = await this.commands.executePlanned(ctx, {
      incidentId: plan.incidentId,
      eventId: plan.eventId,
      occurredAt: plan.occurredAt,
      command: plan.command,
    });
    return { incidentId: result.incidentId, version: result.version, position: result.position };
  }

  private async incidentView(
    orgId: string,
    incidentId: string,
  ): Promise<{ view: IncidentView; result: Omit<IngestResult, 'created'> }> {
    const streamName = incidentStreamName(orgId, incidentId);
    const loaded = await this.commands.load(streamName);
    if (loaded.state === null || loaded.position === null)
      throw new Error(`alert group names incident ${incidentId}, which has no events`);
    const resolvedAt = loaded.state.status === 'RESOLVED' ? await this.resolvedAt(streamName) : null;
    const view: IncidentView = {
      incidentId,
      status: loaded.state.status,
      severity: loaded.state.severity,
      version: loaded.version,
      resolvedAt,
    };
    return { view, result: { incidentId, version: loaded.version, position: loaded.position } };
  }

  /** When the incident was last resolved: its newest INCIDENT_RESOLVED, looked for among the last events. */
  private async resolvedAt(streamName: string): Promise<string | null> {
    const recent = await this.store.readStream(streamName, {
      direction: 'backwards',
      limit: LANDED_LOOKAHEAD,
    });
    const resolved = recent.find((event) => event.type === 'INCIDENT_RESOLVED');
    const occurredAt = resolved?.metadata.occurredAt;
    return typeof occurredAt === 'string' ? occurredAt : null;
  }
}
