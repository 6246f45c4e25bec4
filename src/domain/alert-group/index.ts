import { createHash } from 'node:crypto';
import type { IngestAlerts, IngestSignal } from '../incident/commands.ts';
import { moreSevere } from '../incident/commands.ts';
import type { AlertStatus, Severity, Status } from '../incident/events.ts';
import {
  ALERTS_RECORDED,
  type AlertGroupEvent,
  type PlannedIncidentWrite,
  type RecordedAlert,
} from './events.ts';

export * from './events.ts';

/**
 * The alert group as a decider of its own: which incident the group's alerts go to, and which of
 * them are already recorded there. Its state lives in the group's stream, so every ITS process
 * decides on the same facts, and a lost race re-decides on the winner's.
 */

/** One alert of a notification, as `src/ingest/` maps it from the sender's payload. */
export interface IncomingAlert {
  fingerprint: string;
  status: AlertStatus;
  /** ISO-8601 UTC; absent when the payload has no start time. */
  startsAt?: string;
  severity: Severity;
  /** The signal it becomes; `ts` from the payload when it has one. */
  signal: Omit<IngestSignal, 'type' | 'signalId' | 'fingerprint' | 'status' | 'correlationKey' | 'ts'> & {
    ts?: string;
  };
}

/** A notification of one group, mapped: its alerts and the incident they open when there is none. */
export interface GroupNotification {
  groupKey: string;
  incident: {
    projectId: string;
    title: string;
    serviceName: string;
    environment: string;
    severity: Severity;
  };
  alerts: IncomingAlert[];
}

export interface IngestOptions {
  /** Resolve the incident when all its alerts have resolved (default true). */
  autoResolve: boolean;
  /** Reopen an incident resolved less than this many seconds ago instead of opening a new one. */
  reopenWithinSeconds?: number;
}

/** What the decider needs to know of the group's current incident. */
export interface IncidentView {
  incidentId: string;
  status: Status;
  severity: Severity;
  version: number;
  /** When it was last resolved (ISO-8601), when it is RESOLVED. */
  resolvedAt: string | null;
}

export interface AlertGroupState {
  /** The incident the group's alerts go to, null before the first. */
  incidentId: string | null;
  /** The alerts recorded on that incident, by fingerprint: the latest of each. */
  alerts: Record<string, RecordedAlert>;
  /** The last planned incident write: run again until it has landed. */
  lastPlan: PlannedIncidentWrite | null;
}

export const initialAlertGroupState: AlertGroupState = { incidentId: null, alerts: {}, lastPlan: null };

export function evolveAlertGroup(state: AlertGroupState, event: AlertGroupEvent): AlertGroupState {
  const data = event.data;
  const alerts = data.opened ? {} : { ...state.alerts };
  for (const alert of data.alerts) alerts[alert.fingerprint] = alert;
  return { incidentId: data.incidentId, alerts, lastPlan: data.plan };
}

/** Inputs decide may not make up itself: the clock and new ids. */
export interface DecideContext {
  now: string;
  newIncidentId: string;
  eventId: string;
  detectedBy: string;
}

const ACTIVE: ReadonlySet<Status> = new Set(['OPEN', 'INVESTIGATING', 'MITIGATED']);
export const ALL_ALERTS_RESOLVED = 'all alerts resolved';

/** `alertgroup:` + a hash of the group key: the incident's correlation key, and the stream's name. */
export function alertGroupHash(groupKey: string): string {
  return createHash('sha256').update(groupKey).digest('hex').slice(0, 32);
}

/**
 * Zero events when the notification changes nothing (a repeat, a resolution without an incident),
 * else one event that records the new alerts and plans the incident write.
 */
export function decideAlertGroup(
  notification: GroupNotification,
  options: IngestOptions,
  state: AlertGroupState,
  incident: IncidentView | null,
  context: DecideContext,
): AlertGroupEvent[] {
  const alerts = lastPerFingerprint(notification.alerts);
  const current = state.incidentId !== null && incident?.incidentId === state.incidentId ? incident : null;
  const isNew = (alert: IncomingAlert, recorded: Record<string, RecordedAlert>) =>
    !isRecorded(alert, recorded[alert.fingerprint]);

  if (current && ACTIVE.has(current.status)) {
    const changed = alerts.filter((alert) => isNew(alert, state.alerts));
    if (changed.length === 0) return [];
    const after = { ...state.alerts, ...byFingerprint(changed) };
    const allResolved = Object.values(after).every((alert) => alert.status === 'resolved');
    return [
      recorded(notification, context, current.incidentId, false, changed, current.version, {
        raiseSeverityTo: mostSevereFiring(changed),
        ...(allResolved && options.autoResolve ? { resolveReason: ALL_ALERTS_RESOLVED } : {}),
      }),
    ];
  }

  // No active incident: only a firing alert not yet recorded on the last one starts something.
  if (!alerts.some((alert) => alert.status === 'firing' && isNew(alert, state.alerts))) return [];
  if (current && reopens(current, options, context.now)) {
    const changed = alerts.filter((alert) => isNew(alert, state.alerts));
    return [
      recorded(notification, context, current.incidentId, false, changed, current.version, {
        reopen: true,
        raiseSeverityTo: mostSevereFiring(changed),
      }),
    ];
  }
  const severity = mostSevereFiring(alerts) ?? notification.incident.severity;
  return [
    recorded(notification, context, context.newIncidentId, true, alerts, -1, {
      create: {
        ...notification.incident,
        severity,
        detectedBy: context.detectedBy,
        initialCorrelationKey: correlationKey(notification.groupKey),
      },
    }),
  ];
}

function reopens(incident: IncidentView, options: IngestOptions, now: string): boolean {
  if (incident.status !== 'RESOLVED' || options.reopenWithinSeconds === undefined) return false;
  if (incident.resolvedAt === null) return false;
  return Date.parse(now) - Date.parse(incident.resolvedAt) < options.reopenWithinSeconds * 1000;
}

function correlationKey(groupKey: string): string {
  return `alertgroup:${alertGroupHash(groupKey)}`;
}

/** Recorded already: same status, and the same start (an Events v2 event without one matches any). */
function isRecorded(alert: IncomingAlert, recorded: RecordedAlert | undefined): boolean {
  if (!recorded || recorded.status !== alert.status) return false;
  return alert.startsAt === undefined || recorded.startsAt === alert.startsAt;
}

function recorded(
  notification: GroupNotification,
  context: DecideContext,
  incidentId: string,
  opened: boolean,
  alerts: IncomingAlert[],
  afterVersion: number,
  effects: Omit<IngestAlerts, 'type' | 'signals'>,
): AlertGroupEvent {
  const key = correlationKey(notification.groupKey);
  const signals = alerts.map((alert) => ({
    ...alert.signal,
    signalId: signalId(context.eventId, alert),
    fingerprint: alert.fingerprint,
    status: alert.status,
    correlationKey: key,
    ts: alert.signal.ts ?? context.now,
  }));
  const command = { type: 'IngestAlerts' as const, ...withoutUndefined(effects), signals };
  return {
    type: ALERTS_RECORDED,
    data: {
      incidentId,
      opened,
      alerts: alerts.map(toRecorded),
      plan: { incidentId, eventId: context.eventId, occurredAt: context.now, afterVersion, command },
    },
  };
}

function toRecorded(alert: IncomingAlert): RecordedAlert {
  return {
    fingerprint: alert.fingerprint,
    status: alert.status,
    ...(alert.startsAt !== undefined ? { startsAt: alert.startsAt } : {}),
  };
}

function byFingerprint(alerts: IncomingAlert[]): Record<string, RecordedAlert> {
  return Object.fromEntries(alerts.map((alert) => [alert.fingerprint, toRecorded(alert)]));
}

/** A payload naming one fingerprint twice counts its last entry. */
function lastPerFingerprint(alerts: IncomingAlert[]): IncomingAlert[] {
  return [...new Map(alerts.map((alert) => [alert.fingerprint, alert])).values()];
}

function mostSevereFiring(alerts: IncomingAlert[]): Severity | undefined {
  let most: Severity | undefined;
  for (const alert of alerts)
    if (alert.status === 'firing' && (most === undefined || moreSevere(alert.severity, most)))
      most = alert.severity;
  return most;
}

/** Stable per plan and alert, so a plan run twice records each signal once. */
function signalId(eventId: string, alert: IncomingAlert): string {
  const hash = createHash('sha256').update(`${eventId}/${alert.fingerprint}`).digest('base64url');
  return `sig_${hash.slice(0, 32)}`;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
