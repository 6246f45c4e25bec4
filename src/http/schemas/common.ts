import { z } from 'zod';
import { INCIDENT_ID_PATTERN, ORG_ID_PATTERN } from '../../domain/streams.ts';

/** What requests and responses share: ids, path parameters, times, tags, and the OpenAPI tags of the routes. */

export const OrgId = z.string().regex(ORG_ID_PATTERN, 'must be 1-64 letters, digits, _ or -');
export const IncidentId = z.string().max(64).regex(INCIDENT_ID_PATTERN, 'is not an incident id');

export const OrgParams = z.object({ orgId: OrgId });
export const IncidentParams = z.object({ orgId: OrgId, incidentId: IncidentId });

export const Timestamp = z.iso.datetime();
export const NullableTimestamp = Timestamp.nullable();
const EARLIEST = Date.UTC(1900, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** An ISO-8601 time with any offset, read as UTC; bounded so that every store and read model can hold it. */
export const InputTime = z.iso
  .datetime({ offset: true })
  .refine(
    (value) => Date.parse(value) >= EARLIEST && Date.parse(value) <= LATEST,
    'must be between 1900 and 9999',
  )
  .transform((value) => new Date(value).toISOString());

export const TAG_PATTERN = /^[a-z0-9][a-z0-9:_./-]{0,63}$/;
export const Tag = z.string().regex(TAG_PATTERN, 'must match ^[a-z0-9][a-z0-9:_./-]{0,63}$');

/** The OpenAPI tags the routes are grouped under, one list per group. */
export const TAGS = {
  incidents: ['incidents'],
  activity: ['activity'],
  events: ['events'],
  stats: ['stats'],
  alerts: ['alerts'],
  webhooks: ['webhooks'],
  operations: ['operations'],
  admin: ['admin'],
};
