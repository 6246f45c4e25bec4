/** The org's incidents, newest first, filtered by the URL, kept live by the org's incident stream. */

import { field, h, replaceContent } from '../lib/dom.js';
import { formatAge, formatTime, statusName } from '../lib/format.js';
import { follow } from '../lib/live.js';
import { paths } from '../lib/router.js';
import { serialQueue } from '../lib/serial.js';

const TEXT_FILTERS = [
  ['serviceName', 'Service'],
  ['environment', 'Environment'],
  ['tag', 'Tag'],
  ['q', 'Title contains'],
];
const SORTS = [
  ['createdAt', 'Newest first'],
  ['updatedAt', 'Recently updated'],
  ['severity', 'Most severe first'],
];
const PAGE_SIZE = 20;

/** The filters a URL query names (the same names as the list route's query). */
function filtersOf(query) {
  const list = (name) => (query.get(name) ?? '').split(',').filter(Boolean);
  return {
    status: list('status'),
    severity: list('severity'),
    ...Object.fromEntries(TEXT_FILTERS.map(([name]) => [name, query.get(name) ?? ''])),
    sort: query.get('sort') ?? 'createdAt',
    cursor: query.get('cursor') ?? '',
  };
}

export function listView({ org, route, session, api, contract }) {
  let filters = filtersOf(route.query);
  const boxes = (name, values, label) =>
    values.map((value) => {
      const box = h('input', { type: 'checkbox', name, value, onchange: () => apply() });
      return { value, box, node: h('label', { class: 'check' }, box, ` ${label(value)}`) };
    });
  const statusBoxes = boxes('status', contract.statuses, statusName);
  const severityBoxes = boxes('severity', contract.severities, (value) => value);
  const texts = Object.fromEntries(
    TEXT_FILTERS.map(([name]) => [name, h('input', { type: name === 'q' ? 'search' : 'text', name })]),
  );
  const sort = h(
    'select',
    { name: 'sort', onchange: () => apply() },
    SORTS.map(([value, label]) => h('option', { value }, label)),
  );

  function fillForm() {
    for (const { value, box } of statusBoxes) box.checked = filters.status.includes(value);
    for (const { value, box } of severityBoxes) box.checked = filters.severity.includes(value);
    for (const [name] of TEXT_FILTERS) texts[name].value = filters[name];
    sort.value = filters.sort;
  }

  /** Writes the form's filters to the URL (a new history entry, so Back undoes a filter); the shell calls update(). */
  function apply(next) {
    const chosen = next ?? {
      status: statusBoxes.filter(({ box }) => box.checked).map(({ value }) => value),
      severity: severityBoxes.filter(({ box }) => box.checked).map(({ value }) => value),
      ...Object.fromEntries(TEXT_FILTERS.map(([name]) => [name, texts[name].value.trim()])),
      sort: sort.value === 'createdAt' ? '' : sort.value,
    };
    location.hash = paths.list(org, chosen);
  }

  const form = h(
    'form',
    {
      role: 'search',
      'aria-label': 'Filter incidents',
      class: 'filters',
      onsubmit: (event) => {
        event.preventDefault();
        apply();
      },
    },
    h(
      'fieldset',
      null,
      h('legend', null, 'Status'),
      statusBoxes.map(({ node }) => node),
    ),
    h(
      'fieldset',
      null,
      h('legend', null, 'Severity'),
      severityBoxes.map(({ node }) => node),
    ),
    h(
      'div',
      { class: 'row' },
      TEXT_FILTERS.map(([name, label]) => field(label, texts[name])),
      field('Sort', sort),
    ),
    h(
      'div',
      { class: 'row' },
      h('button', { type: 'submit' }, 'Apply filters'),
      h('button', { type: 'button', onclick: () => apply({}) }, 'Clear filters'),
    ),
  );

  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'incidents' },
    h('caption', null, 'Incidents'),
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        ['Severity', 'Status', 'Title', 'Service', 'Environment', 'Age', 'Tags'].map((name) =>
          h('th', { scope: 'col' }, name),
        ),
      ),
    ),
    tbody,
  );
  const empty = h('p', { class: 'empty', hidden: true }, 'No incidents match these filters.');
  const paging = h('nav', { class: 'paging', 'aria-label': 'Pages' });
  const error = h('p', { class: 'error', role: 'alert' });
  const liveState = h('span', { class: 'live', role: 'status' });
  /** Row per incident id, with the version it shows, so a live update changes only what changed. */
  const rows = new Map();

  function row(incident) {
    return h(
      'tr',
      { 'data-id': incident.id },
      h('td', null, h('span', { class: `badge sev ${incident.severity}` }, incident.severity)),
      h('td', null, h('span', { class: `badge status ${incident.status}` }, statusName(incident.status))),
      h('td', null, h('a', { href: paths.incident(org, incident.id) }, incident.title)),
      h('td', null, incident.serviceName),
      h('td', null, incident.environment),
      h(
        'td',
        null,
        h(
          'time',
          { datetime: incident.createdAt, title: formatTime(incident.createdAt), class: 'age' },
          formatAge(incident.createdAt),
        ),
      ),
      h(
        'td',
        null,
        incident.tags.map((tag) => h('span', { class: 'tag' }, tag)),
      ),
    );
  }

  /** Puts the page's rows in order, reusing unchanged rows and marking the ones that changed. */
  function reconcile(incidents, live) {
    const seen = new Set();
    let cursor = tbody.firstElementChild;
    for (const incident of incidents) {
      seen.add(incident.id);
      let entry = rows.get(incident.id);
      if (!entry || entry.version !== incident.version) {
        const fresh = row(incident);
        if (live) fresh.classList.add('changed');
        if (entry) entry.node.replaceWith(fresh);
        if (cursor === entry?.node) cursor = fresh;
        entry = { node: fresh, version: incident.version };
        rows.set(incident.id, entry);
      }
      if (entry.node !== cursor) tbody.insertBefore(entry.node, cursor);
      else cursor = cursor.nextElementSibling;
    }
    for (const [id, entry] of rows) {
      if (seen.has(id)) continue;
      entry.node.remove();
      rows.delete(id);
    }
    empty.hidden = incidents.length > 0;
  }

  function renderPaging(nextCursor) {
    const { cursor: _cursor, ...rest } = filters;
    replaceContent(
      paging,
      filters.cursor ? h('a', { href: paths.list(org, rest) }, 'First page') : null,
      nextCursor ? h('a', { href: paths.list(org, { ...rest, cursor: nextCursor }) }, 'Next page') : null,
    );
  }

  const run = serialQueue();
  /** Reloads the page of the list; live events during a reload cause one more after it. */
  const load = (live = false) =>
    run(live ? 'live' : 'load', async () => {
      try {
        const { body } = await api.get(`/api/orgs/${encodeURIComponent(org)}/incidents`, {
          ...filters,
          limit: PAGE_SIZE,
        });
        error.textContent = '';
        reconcile(body.incidents, live);
        renderPaging(body.nextCursor);
      } catch (failure) {
        error.textContent = `The list could not be loaded: ${failure.message}`;
      }
    });

  let wasLive = false;
  const stream = follow(`/api/orgs/${encodeURIComponent(org)}/incidents/stream`, {
    token: api.token,
    onEvent: () => load(true),
    onState: (state, reason) => {
      liveState.textContent =
        state === 'live'
          ? 'Live'
          : state === 'reconnecting'
            ? `Reconnecting (${reason})…`
            : state === 'connecting'
              ? 'Connecting…'
              : '';
      liveState.dataset.state = state;
      // What changed between the first load (or the drop) and the stream's start is caught by one more load.
      if (state === 'live' && !wasLive) load(true);
      wasLive = state === 'live';
    },
  });
  // Ages grow while the page is open.
  const ageTimer = setInterval(() => {
    for (const time of tbody.querySelectorAll('time.age'))
      time.textContent = formatAge(time.getAttribute('datetime'));
  }, 30_000);

  fillForm();
  load();

  return {
    title: `Incidents of ${org}`,
    node: h(
      'section',
      { class: 'page' },
      h(
        'div',
        { class: 'heading' },
        h('h1', null, 'Incidents'),
        liveState,
        session.can(org, 'writeIncidents')
          ? h('a', { class: 'button primary', href: paths.declare(org) }, 'Declare incident')
          : null,
      ),
      form,
      error,
      table,
      empty,
      paging,
    ),
    update(query) {
      filters = filtersOf(query);
      fillForm();
      load();
    },
    dispose() {
      stream.stop();
      clearInterval(ageTimer);
    },
  };
}
