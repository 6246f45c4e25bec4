import { z } from 'zod';
import { EVENT_TYPES, Severity, Status } from '../../domain/incident/index.ts';
import { isPosition } from '../../eventstore/port.ts';
import { InputTime } from './common.ts';

/** Query strings of the reads. */

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

export const TimelineQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().min(1).max(2000).optional().describe('nextCursor of the previous page'),
});

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
