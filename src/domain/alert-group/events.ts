import { z } from 'zod';
import { AlertStatus, IncidentSignalIngestedData, Severity } from '../incident/events.ts';

/** The alert group's one event type: stored in `alertgroup-…` streams, so it never changes. */
export const ALERTS_RECORDED = 'ALERT_GROUP_ALERTS_RECORDED';
export const ALERT_GROUP_SCHEMA_VERSION = 1;

/** What the group remembers of one alert on its incident: the dedup key of INGEST.md. */
export const RecordedAlert = z.strictObject({
  fingerprint: z.string(),
  status: AlertStatus,
  /** Absent for an Events v2 event without `payload.timestamp`. */
  startsAt: z.string().optional(),
});
export type RecordedAlert = z.infer<typeof RecordedAlert>;

/** The incident command a notification planned: IngestAlerts with its ids fixed, as stored. */
export const IngestAlertsCommand = z.strictObject({
  type: z.literal('IngestAlerts'),
  create: z
    .strictObject({
      projectId: z.string(),
      title: z.string(),
      serviceName: z.string(),
      severity: Severity,
      environment: z.string(),
      detectedBy: z.string().optional(),
      initialCorrelationKey: z.string().optional(),
    })
    .optional(),
  reopen: z.boolean().optional(),
  acknowledge: z.boolean().optional(),
  signals: z.array(IncidentSignalIngestedData),
  raiseSeverityTo: Severity.optional(),
  resolveReason: z.string().optional(),
});

/** The incident append a notification planned, kept in the group's stream until it has landed. */
export const PlannedIncidentWrite = z.strictObject({
  incidentId: z.string(),
  /** Id of the incident command's first event: how a later reader knows it landed. */
  eventId: z.string(),
  occurredAt: z.string(),
  /** The incident's version the plan was decided on (-1 for a new incident): landed events come after it. */
  afterVersion: z.number().int(),
  command: IngestAlertsCommand,
});
export type PlannedIncidentWrite = z.infer<typeof PlannedIncidentWrite>;

export const AlertsRecordedData = z.strictObject({
  incidentId: z.string(),
  /** True when this notification opened a new incident for the group (earlier alerts belong to the old one). */
  opened: z.boolean(),
  alerts: z.array(RecordedAlert),
  plan: PlannedIncidentWrite,
});
export type AlertsRecordedData = z.infer<typeof AlertsRecordedData>;

export type AlertGroupEvent = { type: typeof ALERTS_RECORDED; data: AlertsRecordedData };

/** Reads a stored alert-group event; throws on anything else. */
export function parseAlertGroupEvent(type: string, data: unknown): AlertGroupEvent {
  if (type !== ALERTS_RECORDED) throw new Error(`unknown alert group event type ${JSON.stringify(type)}`);
  return { type, data: AlertsRecordedData.parse(data) };
}
