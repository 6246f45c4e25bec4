import { z } from 'zod';
import { ClientActionKind, EVENT_TYPES, Severity, SignalType, Status } from '../domain/incident/index.ts';
import { INCIDENT_ID_PATTERN, ORG_ID_PATTERN } from '../domain/streams.ts';
import { isPosition } from '../eventstore/port.ts';

/**
 * The API's zod schemas: they validate requests, type the handlers and generate the OpenAPI
 * document, so the three never disagree. Response schemas carry an id and become components.
 */

export const OrgId = z.string().regex(ORG_ID_PATTERN, 'must be 1-64 letters, digits, _ or -');
export const IncidentId = z.string().max(64).regex(INCIDENT_ID_PATTERN, 'is not an incident id');

export const OrgParams = z.object({ orgId: OrgId });
export const IncidentParams = z.object({ orgId: OrgId, incidentId: IncidentId });

const Timestamp = z.iso.datetime();
const NullableTimestamp = Timestamp.nullable();
const EARLIEST = Date.UTC(1900, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** An ISO-8601 time with any offset, read as UTC; bounded so that every store and read model can hold it. */
const InputTime = z.iso
  .datetime({ offset: true })
  .refine(
    (value) => Date.parse(value) >= EARLIEST && Date.parse(value) <= LATEST,
    'must be between 1900 and 9999',
  )
  .transform((value) => new Date(value).toISOString());

export const TAG_PATTERN = /^[a-z0-9][a-z0-9:_./-]{0,63}$/;
export const Tag = z.string().regex(TAG_PATTERN, 'must match ^[a-z0-9][a-z0-9:_./-]{0,63}$');

// ---- bodies ---------------------------------------------------------------------------------

const name = (max: number) => z.string().trim().min(1).max(max);
const text = (max: number) => z.string().max(max);

export const CreateIncidentBody = z.object({
  projectId: name(200),
  title: name(200),
  serviceName: name(200),
  severity: Severity,
  environment: name(100),
  detectedBy: name(200).optional(),
  description: text(10_000).optional(),
  runbookPath: name(1000).optional(),
  tags: z.array(Tag).max(50).optional(),
  initialCorrelationKey: name(200).optional(),
});

const UPDATABLE = [
  'title',
  'description',
  'serviceName',
  'environment',
  'runbookPath',
  'projectId',
  'detectedBy',
] as const;
export const UpdateIncidentBody = z
  .object({
    title: name(200).optional(),
    description: text(10_000).nullable().optional().describe('null clears it'),
    serviceName: name(200).optional(),
    environment: name(100).optional(),
    runbookPath: name(1000).nullable().optional().describe('null clears it'),
    projectId: name(200).optional(),
    detectedBy: name(200).nullable().optional().describe('null clears it'),
  })
  .refine((body) => UPDATABLE.some((field) => body[field] !== undefined), {
    message: `at least one of ${UPDATABLE.join(', ')} is required`,
  });

export const ChangeStatusBody = z.object({ newStatus: Status, reason: text(1000).optional() });
export const ChangeSeverityBody = z.object({ newSeverity: Severity, reason: text(1000).optional() });
export const AddTagBody = z.object({ tag: Tag });
export const LinkTicketBody = z.object({
  system: name(50).describe('the ticketing system, e.g. JIRA'),
  key: name(200),
  // Only web links: a javascript: or file: URL rendered as a link would be stored XSS.
  url: z
    .url({ protocol: /^https?$/ })
    .max(2000)
    .optional(),
});
export const RecordActionBody = z.object({
  actionKind: ClientActionKind,
  label: name(200),
  details: text(10_000).optional(),
});

const SIGNAL_DATA_MAX_BYTES = 64 * 1024;
export const IngestSignalBody = z.object({
  signalType: SignalType,
  source: name(200),
  summary: name(1000),
  serviceName: name(200).optional(),
  environment: name(100).optional(),
  correlationKey: name(200).optional(),
  traceId: name(200).optional(),
  data: z
    .record(z.string(), z.unknown())
    .refine((data) => Buffer.byteLength(JSON.stringify(data)) <= SIGNAL_DATA_MAX_BYTES, {
      message: 'must be at most 64 KiB as JSON',
    })
    .optional(),
  ts: InputTime.optional(),
});

export const RecordSloViolationBody = z
  .object({
    sloId: name(200),
    windowStart: InputTime,
    windowEnd: InputTime,
    errorBudgetConsumed: z.number().min(0),
    thresholdBreached: z.boolean(),
    details: text(10_000).optional(),
  })
  .refine((body) => Date.parse(body.windowEnd) > Date.parse(body.windowStart), {
    message: 'must be after windowStart',
    path: ['windowEnd'],
    // Checked as soon as both times are valid, so one answer names every bad field.
    when: ({ value }) => {
      if (value === null || typeof value !== 'object') return false;
      const body = value as { windowStart?: unknown; windowEnd?: unknown };
      return (
        typeof body.windowStart === 'string' &&
        typeof body.windowEnd === 'string' &&
        !Number.isNaN(Date.parse(body.windowStart)) &&
        !Number.isNaN(Date.parse(body.windowEnd))
      );
    },
  });

// ---- headers --------------------------------------------------------------------------------

const IfMatch = z
  .string()
  .regex(/^\s*"?\d{1,9}"?\s*$/, 'must be an ETag this API issued, like "3"')
  .transform((value) => Number(value.replace(/[\s"]/g, '')));

/** Headers every write understands; any other header passes through untouched. */
export const WriteHeaders = z.looseObject({
  'if-match': IfMatch.optional().describe(
    'the version the change applies to: 412 if the incident is at another',
  ),
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .refine((key) => !/\p{Cc}/u.test(key), 'must not contain control characters')
    .optional()
    .describe('replays the first response for the same request'),
  prefer: z.string().optional().describe('respond-async: answer 202 without waiting for the read models'),
});
export const CreateHeaders = WriteHeaders.omit({ 'if-match': true });

// ---- queries --------------------------------------------------------------------------------

/** A repeated or comma-separated query parameter, as a list of enum values. */
const anyOf = <T extends z.ZodType>(item: T) =>
  z.preprocess((value) => {
    if (value === undefined) return undefined;
    const list = (Array.isArray(value) ? value : [value]).flatMap((entry) => String(entry).split(','));
    return list.map((entry) => entry.trim()).filter((entry) => entry !== '');
  }, z.array(item).min(1).optional());

export const ListIncidentsQuery = z.object({
  projectId: z.string().min(1).optional(),
  environment: z.string().min(1).optional(),
  serviceName: z.string().min(1).optional(),
  status: anyOf(Status).describe('any of these statuses: repeat the parameter or separate with commas'),
  severity: anyOf(Severity).describe('any of these severities: repeat the parameter or separate with commas'),
  tag: z.string().min(1).optional(),
  correlationKey: z.string().min(1).optional(),
  q: z.string().min(1).max(200).optional().describe('case-insensitive match in the title'),
  createdFrom: InputTime.optional().describe('inclusive'),
  createdTo: InputTime.optional().describe('inclusive'),
  sort: z
    .enum(['createdAt', 'updatedAt', 'severity'])
    .default('createdAt')
    .describe('severity desc: most severe first'),
  order: z.enum(['desc', 'asc']).default('desc'),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().min(1).max(2000).optional().describe('nextCursor of the previous page'),
});

export const StreamEventsQuery = z.object({
  fromVersion: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .describe('inclusive; default 0 forwards, the last event backwards'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  direction: z.enum(['forwards', 'backwards']).default('forwards'),
});

export const OrgEventsQuery = z.object({
  fromPosition: z
    .string()
    .refine(isPosition, 'is not a position this API issued')
    .optional()
    .describe('exclusive: events after this position'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  type: anyOf(z.enum(EVENT_TYPES)).describe(
    'only these event types: repeat the parameter or separate with commas',
  ),
});

// ---- responses ------------------------------------------------------------------------------

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

// ---- text PostgreSQL cannot store ------------------------------------------------------------

/** NUL, or half a surrogate pair: valid in JSON and URLs, refused by PostgreSQL text and jsonb. */
// eslint-disable-next-line no-control-regex -- finding NUL is the point
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Deeper JSON than any request needs; PostgreSQL's jsonb parser would also refuse much deeper input. */
export const MAX_JSON_DEPTH = 64;

/**
 * Where `value` holds text PostgreSQL cannot store (a string or key with NUL or half a surrogate
 * pair) or nests deeper than MAX_JSON_DEPTH: the path and the problem, or null when it is fine.
 * Iterative, so no input can exhaust the stack.
 */
export function findUnstorableText(value: unknown): { path: string; message: string } | null {
  const pending: { value: unknown; path: string[] }[] = [{ value, path: [] }];
  while (pending.length > 0) {
    const { value: current, path } = pending.pop()!;
    if (typeof current === 'string') {
      if (UNSTORABLE.test(current))
        return { path: path.join('.'), message: 'must not contain NUL characters or unpaired surrogates' };
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (path.length >= MAX_JSON_DEPTH)
      return { path: path.join('.'), message: `must not nest deeper than ${MAX_JSON_DEPTH} levels` };
    const entries = Array.isArray(current)
      ? current.map((item, index) => [String(index), item] as const)
      : Object.entries(current);
    for (const [key, item] of entries) {
      if (UNSTORABLE.test(key))
        return {
          path: [...path, key].join('.'),
          message: 'must not contain NUL characters or unpaired surrogates',
        };
      pending.push({ value: item, path: [...path, key] });
    }
  }
  return null;
}

// ---- timeline, response-time statistics, live streams (LIVE.md) ------------------------------

export const TimelineQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().min(1).max(2000).optional().describe('nextCursor of the previous page'),
});

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

export const ResponseTimesQuery = z.object({
  from: InputTime.optional().describe('inclusive; default `to` minus 30 days'),
  to: InputTime.optional().describe('exclusive; default now'),
  groupBy: z
    .enum(['service', 'severity', 'project', 'environment', 'week'])
    .optional()
    .describe('week: keyed by its Monday (UTC), YYYY-MM-DD'),
  projectId: z.string().min(1).optional(),
  serviceName: z.string().min(1).optional(),
  environment: z.string().min(1).optional(),
  severity: anyOf(Severity).describe('any of these severities: repeat the parameter or separate with commas'),
});

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
