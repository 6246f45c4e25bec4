import { z } from 'zod';
import { AlertStatus, Severity, SignalType, Status } from '../../domain/incident/index.ts';
import { NullableTimestamp, Timestamp } from './common.ts';

/** Response bodies: each carries an id and becomes a component of the OpenAPI document. */

export const WriteResult = z
  .object({
    incidentId: z.string(),
    version: z.number().int(),
    position: z.string().describe('opaque; accepted back as fromPosition'),
    actionId: z.string().optional(),
    signalId: z.string().optional(),
    violationId: z.string().optional(),
  })
  .meta({ id: 'WriteResult' });

/** What every write answers with: 201 (created) or 200 once the read models show it, 202 before. */
export const written = { 200: WriteResult, 201: WriteResult, 202: WriteResult };

export const Incident = z
  .object({
    id: z.string(),
    orgId: z.string(),
    projectId: z.string(),
    title: z.string(),
    description: z.string().nullable(),
    serviceName: z.string(),
    status: Status,
    severity: Severity,
    environment: z.string(),
    detectedBy: z.string().nullable(),
    primarySignalId: z.string().nullable(),
    runbookPath: z.string().nullable(),
    externalRefs: z.array(
      z.object({ system: z.string(), key: z.string(), url: z.string().nullable(), linkedAt: Timestamp }),
    ),
    correlationKeys: z.array(z.string()),
    tags: z.array(z.string()),
    createdBy: z.object({ type: z.string(), ref: z.string() }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    acknowledgedAt: NullableTimestamp,
    mitigatedAt: NullableTimestamp,
    resolvedAt: NullableTimestamp,
    cancelledAt: NullableTimestamp,
    version: z.number().int(),
  })
  .meta({ id: 'Incident' });

export const Signal = z
  .object({
    id: z.string(),
    incidentId: z.string(),
    orgId: z.string(),
    signalType: SignalType,
    source: z.string(),
    summary: z.string(),
    serviceName: z.string().nullable(),
    environment: z.string().nullable(),
    correlationKey: z.string().nullable(),
    traceId: z.string().nullable(),
    fingerprint: z.string().nullable().describe("the alert's identity in its group (signal schema v2)"),
    status: AlertStatus.nullable().describe('firing or resolved, for alerts (signal schema v2)'),
    data: z.record(z.string(), z.unknown()).nullable(),
    ts: Timestamp,
  })
  .meta({ id: 'Signal' });

export const Action = z
  .object({
    id: z.string(),
    incidentId: z.string(),
    orgId: z.string(),
    actionKind: z.string(),
    label: z.string(),
    details: z.string().nullable(),
    actorType: z.string(),
    actorRef: z.string(),
    ts: Timestamp,
  })
  .meta({ id: 'Action' });

export const SloViolation = z
  .object({
    id: z.string(),
    incidentId: z.string(),
    orgId: z.string(),
    sloId: z.string(),
    windowStart: Timestamp,
    windowEnd: Timestamp,
    errorBudgetConsumed: z.number(),
    thresholdBreached: z.boolean(),
    details: z.string().nullable(),
  })
  .meta({ id: 'SloViolation' });

export const IncidentList = z
  .object({ incidents: z.array(Incident), nextCursor: z.string().nullable() })
  .meta({ id: 'IncidentList' });

export const IncidentDetails = z
  .object({
    incident: Incident,
    signals: z.array(Signal),
    actions: z.array(Action),
    sloViolations: z.array(SloViolation),
    counts: z
      .object({ signals: z.number().int(), actions: z.number().int(), sloViolations: z.number().int() })
      .describe(
        'how many of each the incident has in all: each list above holds at most the 200 most recent, oldest first; the timeline pages through every one',
      ),
  })
  .meta({ id: 'IncidentDetails' });

const eventFields = {
  eventId: z.string(),
  type: z.string(),
  version: z.number().int(),
  position: z.string(),
  createdAt: Timestamp,
  data: z.record(z.string(), z.unknown()),
  metadata: z.record(z.string(), z.unknown()),
};

export const StreamEvents = z
  .object({
    streamName: z.string(),
    events: z.array(z.object(eventFields)),
    nextFromVersion: z.number().int().nullable(),
  })
  .meta({ id: 'StreamEvents' });

export const OrgEvents = z
  .object({
    events: z.array(z.object({ ...eventFields, streamName: z.string() })),
    nextFromPosition: z.string().nullable(),
  })
  .meta({ id: 'OrgEvents' });

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string(),
    detail: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem', description: 'application/problem+json' });

const timelineFields = { ts: Timestamp, version: z.number().int() };
export const Timeline = z
  .object({
    entries: z.array(
      z.discriminatedUnion('kind', [
        Action.extend({ kind: z.literal('action'), ...timelineFields }),
        Signal.extend({ kind: z.literal('signal'), ...timelineFields }),
        SloViolation.extend({
          kind: z.literal('slo_violation'),
          ...timelineFields,
          ts: Timestamp.describe("the violation's windowStart"),
        }),
      ]),
    ),
    nextCursor: z.string().nullable(),
  })
  .meta({ id: 'Timeline' });

const Durations = z
  .object({
    mean: z.number().nullable(),
    p50: z.number().nullable(),
    p90: z.number().nullable(),
    p95: z.number().nullable(),
  })
  .describe('seconds; null when no incident qualifies');

export const ResponseTimes = z
  .object({
    from: Timestamp,
    to: Timestamp,
    groups: z.array(
      z.object({
        key: z.string(),
        incidents: z.number().int().describe('created in [from, to), cancelled ones left out'),
        acknowledged: z.number().int(),
        resolved: z.number().int().describe('resolved now; a reopened incident counts once resolved again'),
        cancelled: z.number().int(),
        timeToAcknowledge: Durations,
        timeToResolve: Durations,
      }),
    ),
  })
  .meta({ id: 'ResponseTimes' });
