/** Routes live in the URL fragment (`#/orgs/acme/incidents?status=OPEN`), so `/` is the only page ITS serves. */

import { queryString } from './api.js';

/** `#/orgs/acme/incidents/inc_1?x=y` → `{ name: 'incident', org: 'acme', incidentId: 'inc_1', query }`. */
export function parseRoute(hash) {
  const text = hash.replace(/^#/, '');
  const mark = text.indexOf('?');
  const path = mark === -1 ? text : text.slice(0, mark);
  const query = new URLSearchParams(mark === -1 ? '' : text.slice(mark + 1));
  let parts;
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return { name: 'unknown', query };
  }
  if (parts.length === 0) return { name: 'home', query };
  const [orgs, org, section, incidentId, sub] = parts;
  if (orgs !== 'orgs' || !org) return { name: 'unknown', query };
  if (section === undefined) return { name: 'list', org, query };
  if (section === 'incidents' && incidentId === undefined) return { name: 'list', org, query };
  if (section === 'incidents' && incidentId === 'new' && sub === undefined)
    return { name: 'declare', org, query };
  if (section === 'incidents' && sub === undefined) return { name: 'incident', org, incidentId, query };
  if (section === 'incidents' && sub === 'audit' && parts.length === 5)
    return { name: 'audit', org, incidentId, query };
  if (section === 'stats' && incidentId === undefined) return { name: 'stats', org, query };
  return { name: 'unknown', org, query };
}

/** `link('orgs', 'acme', 'incidents')` → `#/orgs/acme/incidents`, with an optional query object. */
export function link(...parts) {
  const last = parts.at(-1);
  const query = typeof last === 'object' && last !== null ? parts.pop() : undefined;
  return `#/${parts.map(encodeURIComponent).join('/')}${queryString(query)}`;
}

export const paths = {
  list: (org, query) => link('orgs', org, 'incidents', query ?? {}),
  declare: (org) => link('orgs', org, 'incidents', 'new'),
  incident: (org, id) => link('orgs', org, 'incidents', id),
  audit: (org, id) => link('orgs', org, 'incidents', id, 'audit'),
  stats: (org, query) => link('orgs', org, 'stats', query ?? {}),
};
