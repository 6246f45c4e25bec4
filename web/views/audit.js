/** The raw events of one incident, version by version, with their metadata (roles that may read raw events). */

import { h } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { paths } from '../lib/router.js';

const PAGE = 500;

export function auditView({ org, route, session, api, contract }) {
  const incidentId = route.incidentId;
  const base = `/api/orgs/${encodeURIComponent(org)}/incidents/${encodeURIComponent(incidentId)}`;
  const tbody = h('tbody');
  const error = h('p', { class: 'error', role: 'alert' });
  const count = h('p', { class: 'count', role: 'status' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more events');
  let nextFromVersion = 0;
  let shown = 0;

  const json = (value) => h('pre', { class: 'json' }, JSON.stringify(value, null, 2));

  async function load() {
    more.disabled = true;
    try {
      const { body } = await api.get(`${base}/events`, { fromVersion: nextFromVersion, limit: PAGE });
      const rows = body.events.map((event) =>
        h(
          'tr',
          null,
          h('th', { scope: 'row' }, String(event.version)),
          h('td', null, event.type),
          h('td', null, h('time', { datetime: event.createdAt }, formatTime(event.createdAt))),
          h('td', null, `${event.metadata?.actor?.type ?? ''} ${event.metadata?.actor?.ref ?? ''}`),
          h('td', null, h('code', null, event.position)),
          h('td', null, json(event.data)),
          h('td', null, json(event.metadata)),
        ),
      );
      tbody.append(...rows);
      shown += rows.length;
      count.textContent = `${shown} ${shown === 1 ? 'event' : 'events'} of stream ${body.streamName}`;
      nextFromVersion = body.nextFromVersion;
      more.hidden = nextFromVersion === null;
    } catch (failure) {
      error.textContent = failure.message;
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', load);

  const allowed = session.can(org, 'readEvents');
  if (allowed) load();
  return {
    title: 'Raw events',
    node: h(
      'section',
      { class: 'page' },
      h('h1', null, 'Raw events'),
      h('p', null, h('a', { href: paths.incident(org, incidentId) }, 'Back to the war room')),
      allowed
        ? [
            count,
            error,
            h(
              'div',
              { class: 'scroll' },
              h(
                'table',
                { class: 'audit' },
                h('caption', null, `Events of incident ${incidentId}`),
                h(
                  'thead',
                  null,
                  h(
                    'tr',
                    null,
                    ['Version', 'Type', 'Recorded', 'Actor', 'Position', 'Data', 'Metadata'].map((name) =>
                      h('th', { scope: 'col' }, name),
                    ),
                  ),
                ),
                tbody,
              ),
            ),
            more,
          ]
        : h(
            'p',
            null,
            `Your roles in ${org} may not read raw events; ${contract.operationRoles.readEvents.join(', ')} may.`,
          ),
    ),
  };
}
