import { z } from 'zod';
import { INCIDENT_ID_PATTERN, ORG_ID_PATTERN } from '../streams.ts';

/** The twelve event type names: stored in every stream, so they never change. */
export const EVENT_TYPES = [
  'INCIDENT_CREATED',
  'INCIDENT_UPDATED',
  'INCIDENT_STATUS_CHANGED',
  'INCIDENT_SEVERITY_CHANGED',
  'INCIDENT_TAG_ADDED',
  'INCIDENT_TAG_REMOVED',
  'INCIDENT_SIGNAL_INGESTED',
  'INCIDENT_NOTE_ADDED',
  'INCIDENT_PLAYBOOK_ACTION_EXECUTED',
  'INCIDENT_SLO_VIOLATION_RECORDED',
  'INCIDENT_LINKED_TO_TICKET',
  'INCIDENT_RESOLVED',
] as const;
export type IncidentEventType = (typeof EVENT_TYPES)[number];

export function isIncidentEventType(type: string): type is IncidentEventType {
  return (EVENT_TYPES as readonly string[]).includes(type);
}

// ---- Enumerations ----

export const Severity = z.enum(['SEV1', 'SEV2', 'SEV3', 'SEV4']);
export type Severity = z.infer<typeof Severity>;

export const Status = z.enum(['OPEN', 'INVESTIGATING', 'MITIGATED', 'RESOLVED', 'CANCELLED']);
export type Status = z.infer<typeof Status>;

export const SignalType = z.enum(['ALERT', 'METRIC', 'LOG', 'TRACE', 'DEPLOYMENT', 'CUSTOM']);
export type SignalType = z.infer<typeof SignalType>;

/** Action kinds a client may record. */
export const ClientActionKind = z.enum([
  'NOTE',
  'PLAYBOOK',
  'COMMAND',
  'ESCALATION',
  'COMMUNICATION',
  'OTHER',
]);
export type ClientActionKind = z.infer<typeof ClientActionKind>;

/** Action kinds on the timeline: the client's plus those the service writes for its own events. */
export const TimelineActionKind = z.enum([
  ...ClientActionKind.options,
  'STATUS_CHANGE',
  'SEVERITY_CHANGE',
  'TICKET_LINK',
]);
export type TimelineActionKind = z.infer<typeof TimelineActionKind>;

export const ActorType = z.enum(['USER', 'SYSTEM', 'INTEGRATION']);
export type ActorType = z.infer<typeof ActorType>;

// Offsets are accepted when reading: stored events are never rewritten, so be lenient about old ones.
const isoDateTime = z.iso.datetime({ offset: true });

// ---- Event data, one schema per type (EVENTS.md) ----

export const IncidentCreatedData = z.strictObject({
  projectId: z.string(),
  title: z.string(),
  description: z.string().optional(),
  serviceName: z.string(),
  severity: Severity,
  environment: z.string(),
  detectedBy: z.string().optional(),
  runbookPath: z.string().optional(),
  tags: z.array(z.string()),
  correlationKeys: z.array(z.string()),
});
export type IncidentCreatedData = z.infer<typeof IncidentCreatedData>;

/** The fields an update may change; the optional ones may be cleared with `null`. */
export const IncidentChanges = z.strictObject({
  title: z.string().optional(),
  description: z.string().nullable().optional(),
  serviceName: z.string().optional(),
  environment: z.string().optional(),
  runbookPath: z.string().nullable().optional(),
  projectId: z.string().optional(),
  detectedBy: z.string().nullable().optional(),
});
export type IncidentChanges = z.infer<typeof IncidentChanges>;

export const IncidentUpdatedData = z.strictObject({
  changes: IncidentChanges.refine(
    (changes) => Object.keys(changes).length > 0,
    'an update changes at least one field',
  ),
});
export type IncidentUpdatedData = z.infer<typeof IncidentUpdatedData>;

export const IncidentStatusChangedData = z.strictObject({
  from: Status,
  to: Status.exclude(['RESOLVED']), // resolving has its own event
  reason: z.string().optional(),
});
export type IncidentStatusChangedData = z.infer<typeof IncidentStatusChangedData>;

export const IncidentSeverityChangedData = z.strictObject({
  from: Severity,
  to: Severity,
  reason: z.string().optional(),
});
export type IncidentSeverityChangedData = z.infer<typeof IncidentSeverityChangedData>;

export const IncidentTagAddedData = z.strictObject({ tag: z.string() });
export type IncidentTagAddedData = z.infer<typeof IncidentTagAddedData>;

export const IncidentTagRemovedData = z.strictObject({ tag: z.string() });
export type IncidentTagRemovedData = z.infer<typeof IncidentTagRemovedData>;

/** An alert's state as its sender reported it (schema version 2 of the signal). */
export const AlertStatus = z.enum(['firing', 'resolved']);
export type AlertStatus = z.infer<typeof AlertStatus>;

export const IncidentSignalIngestedData = z.strictObject({
  signalId: z.string(),
  signalType: SignalType,
  source: z.string(),
  summary: z.string(),
  serviceName: z.string().optional(),
  environment: z.string().optional(),
  correlationKey: z.string().optional(),
  traceId: z.string().optional(),
  /** Version 2: the alert's identity within its group (Alertmanager's fingerprint, Events v2's dedup_key). */
  fingerprint: z.string().optional(),
  /** Version 2: whether this signal reports the alert firing or resolved. */
  status: AlertStatus.optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  ts: isoDateTime,
});
export type IncidentSignalIngestedData = z.infer<typeof IncidentSignalIngestedData>;

export const IncidentNoteAddedData = z.strictObject({
  actionId: z.string(),
  label: z.string(),
  details: z.string().optional(),
});
export type IncidentNoteAddedData = z.infer<typeof IncidentNoteAddedData>;

export const IncidentPlaybookActionExecutedData = z.strictObject({
  actionId: z.string(),
  actionKind: ClientActionKind.exclude(['NOTE']), // notes have their own event
  label: z.string(),
  details: z.string().optional(),
});
export type IncidentPlaybookActionExecutedData = z.infer<typeof IncidentPlaybookActionExecutedData>;

export const IncidentSloViolationRecordedData = z.strictObject({
  violationId: z.string(),
  sloId: z.string(),
  windowStart: isoDateTime,
  windowEnd: isoDateTime,
  errorBudgetConsumed: z.number(),
  thresholdBreached: z.boolean(),
  details: z.string().optional(),
});
export type IncidentSloViolationRecordedData = z.infer<typeof IncidentSloViolationRecordedData>;

export const IncidentLinkedToTicketData = z.strictObject({
  system: z.string(),
  key: z.string(),
  url: z.string().optional(),
});
export type IncidentLinkedToTicketData = z.infer<typeof IncidentLinkedToTicketData>;

export const IncidentResolvedData = z.strictObject({
  from: Status.exclude(['RESOLVED']),
  reason: z.string().optional(),
});
export type IncidentResolvedData = z.infer<typeof IncidentResolvedData>;

export const eventDataSchemas = {
  INCIDENT_CREATED: IncidentCreatedData,
  INCIDENT_UPDATED: IncidentUpdatedData,
  INCIDENT_STATUS_CHANGED: IncidentStatusChangedData,
  INCIDENT_SEVERITY_CHANGED: IncidentSeverityChangedData,
  INCIDENT_TAG_ADDED: IncidentTagAddedData,
  INCIDENT_TAG_REMOVED: IncidentTagRemovedData,
  INCIDENT_SIGNAL_INGESTED: IncidentSignalIngestedData,
  INCIDENT_NOTE_ADDED: IncidentNoteAddedData,
  INCIDENT_PLAYBOOK_ACTION_EXECUTED: IncidentPlaybookActionExecutedData,
  INCIDENT_SLO_VIOLATION_RECORDED: IncidentSloViolationRecordedData,
  INCIDENT_LINKED_TO_TICKET: IncidentLinkedToTicketData,
  INCIDENT_RESOLVED: IncidentResolvedData,
} as const satisfies Record<IncidentEventType, z.ZodType>;

export type EventData<T extends IncidentEventType> = z.infer<(typeof eventDataSchemas)[T]>;

/** `{ type: 'INCIDENT_CREATED'; data: IncidentCreatedData } | …`, one member per event type. */
export type IncidentEvent = { [T in IncidentEventType]: { type: T; data: EventData<T> } }[IncidentEventType];

// ---- Metadata ----

export const eventMetadataSchema = z.object({
  orgId: z.string().regex(ORG_ID_PATTERN),
  incidentId: z.string().regex(INCIDENT_ID_PATTERN),
  actor: z.object({ type: ActorType, ref: z.string().min(1) }),
  occurredAt: isoDateTime,
  correlationId: z.string().min(1),
  causationId: z.string().optional(),
  idempotencyKey: z.string().optional(),
  schemaVersion: z.number().int().positive(),
});
export type EventMetadata = z.infer<typeof eventMetadataSchema>;

// ---- Schema versions and upcasters ----

/** The schema version written today for each type. Bump it together with an upcaster from the old one. */
export const CURRENT_SCHEMA_VERSION = {
  INCIDENT_CREATED: 1,
  INCIDENT_UPDATED: 1,
  INCIDENT_STATUS_CHANGED: 1,
  INCIDENT_SEVERITY_CHANGED: 1,
  INCIDENT_TAG_ADDED: 1,
  INCIDENT_TAG_REMOVED: 1,
  INCIDENT_SIGNAL_INGESTED: 2,
  INCIDENT_NOTE_ADDED: 1,
  INCIDENT_PLAYBOOK_ACTION_EXECUTED: 1,
  INCIDENT_SLO_VIOLATION_RECORDED: 1,
  INCIDENT_LINKED_TO_TICKET: 1,
  INCIDENT_RESOLVED: 1,
} as const satisfies Record<IncidentEventType, number>;

/** Turns the data of schema version N into the shape of version N + 1. */
export type Upcaster = (data: unknown) => unknown;
/** Per event type: schema version N → the upcaster from N to N + 1. */
export type UpcasterTable = Partial<Record<IncidentEventType, Record<number, Upcaster>>>;

/** Signal v1 → v2: v2 only adds the optional `fingerprint` and `status`, so a v1 signal reads as it is. */
export const upcastSignalV1: Upcaster = (data) => data;

export const upcasters: UpcasterTable = { INCIDENT_SIGNAL_INGESTED: { 1: upcastSignalV1 } };

/** A stored event names a type this code does not know. */
export class UnknownEventType extends Error {
  override readonly name = 'UnknownEventType';
  constructor(readonly type: string) {
    super(`unknown incident event type ${JSON.stringify(type)}`);
  }
}

/** A stored event's schema version cannot be brought to the current one (newer than this code, or no upcaster). */
export class UnsupportedSchemaVersion extends Error {
  override readonly name = 'UnsupportedSchemaVersion';
  constructor(
    readonly type: IncidentEventType,
    readonly schemaVersion: number,
    readonly currentVersion: number,
  ) {
    super(`cannot read ${type} schema version ${schemaVersion} (current is ${currentVersion})`);
  }
}

export interface EventReader {
  upcasters: UpcasterTable;
  currentVersions: Record<IncidentEventType, number>;
}

/**
 * Reads a stored event with the given upcasters and current versions: upcasts its data from the
 * stored schema version to the current one, then validates it. Throws UnknownEventType,
 * UnsupportedSchemaVersion or a ZodError.
 */
export function readEventWith(
  reader: EventReader,
  type: string,
  data: unknown,
  schemaVersion: number,
): IncidentEvent {
  if (!isIncidentEventType(type)) throw new UnknownEventType(type);
  const current = reader.currentVersions[type];
  if (!Number.isInteger(schemaVersion) || schemaVersion < 1 || schemaVersion > current) {
    throw new UnsupportedSchemaVersion(type, schemaVersion, current);
  }
  let upcast = data;
  for (let version = schemaVersion; version < current; version++) {
    const step = reader.upcasters[type]?.[version];
    if (!step) throw new UnsupportedSchemaVersion(type, schemaVersion, current);
    upcast = step(upcast);
  }
  // The cast restores the link between `type` and its schema, which TypeScript cannot follow through the lookup.
  return { type, data: eventDataSchemas[type].parse(upcast) } as IncidentEvent;
}

/** Reads a stored event as this code knows it today. */
export function parseEvent(type: string, data: unknown, schemaVersion: number): IncidentEvent {
  return readEventWith({ upcasters, currentVersions: CURRENT_SCHEMA_VERSION }, type, data, schemaVersion);
}
