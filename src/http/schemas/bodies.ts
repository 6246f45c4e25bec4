import { z } from 'zod';
import {
  ClientActionKind,
  Severity,
  SignalType,
  Status,
  UPDATABLE_FIELDS,
} from '../../domain/incident/index.ts';
import { InputTime, Tag } from './common.ts';

/** Request bodies of the writes. */

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
  .refine((body) => UPDATABLE_FIELDS.some((field) => body[field] !== undefined), {
    message: `at least one of ${UPDATABLE_FIELDS.join(', ')} is required`,
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
