import { uuidv7 } from 'uuidv7';

/** No dot: the dot separates the org from the incident in a stream name. */
export const ORG_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** `inc_` and a URL-safe id, at most 64 characters in all. */
export const INCIDENT_ID_PATTERN = /^inc_[0-9A-Za-z_-]{1,60}$/;

const CATEGORY_PREFIX = 'incident-';

/** `incident-{orgId}.{incidentId}`: one stream per incident. */
export function incidentStreamName(orgId: string, incidentId: string): string {
  return `${orgStreamPrefix(orgId)}${incidentId}`;
}

/** `incident-{orgId}.`: the prefix that selects one org's streams from `$all`. */
export function orgStreamPrefix(orgId: string): string {
  return `${CATEGORY_PREFIX}${orgId}.`;
}

export function parseIncidentStreamName(name: string): { orgId: string; incidentId: string } | null {
  if (!name.startsWith(CATEGORY_PREFIX)) return null;
  const rest = name.slice(CATEGORY_PREFIX.length);
  const dot = rest.indexOf('.');
  if (dot === -1) return null;
  const orgId = rest.slice(0, dot);
  const incidentId = rest.slice(dot + 1);
  if (!ORG_ID_PATTERN.test(orgId) || !INCIDENT_ID_PATTERN.test(incidentId)) return null;
  return { orgId, incidentId };
}

const ALERT_GROUP_CATEGORY_PREFIX = 'alertgroup-';

/** `alertgroup-{orgId}.{groupHash}`: one stream per alert group, apart from the incident category. */
export function alertGroupStreamName(orgId: string, groupHash: string): string {
  return `${ALERT_GROUP_CATEGORY_PREFIX}${orgId}.${groupHash}`;
}

/** A new, time-ordered incident id. Impure (clock and randomness), so it stays out of decide. */
export function newIncidentId(): string {
  return `inc_${uuidv7().replaceAll('-', '')}`;
}
