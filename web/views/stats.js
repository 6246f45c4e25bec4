/** Response times (MTTA, MTTR) by service, severity, … for a period: a chart and the table it draws. */

import { field, h, replaceContent, svg } from '../lib/dom.js';
import { formatDuration } from '../lib/format.js';
import { paths } from '../lib/router.js';

const GROUPINGS = [
  ['service', 'Service'],
  ['severity', 'Severity'],
  ['project', 'Project'],
  ['environment', 'Environment'],
  ['week', 'Week'],
];
const DATE = /^\d{4}-\d\d-\d\d$/;

/** The period a URL names as dates; `to` is inclusive on the page and exclusive (the next midnight) for the API. */
function periodOf(query) {
  const from = DATE.test(query.get('from') ?? '') ? query.get('from') : '';
  const to = DATE.test(query.get('to') ?? '') ? query.get('to') : '';
  const groupBy = GROUPINGS.some(([value]) => value === query.get('groupBy'))
    ? query.get('groupBy')
    : 'service';
  return { from, to, groupBy };
}

function nextDay(date) {
  const day = new Date(`${date}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() + 1);
  return day.toISOString();
}

function chart(groups, groupLabel) {
  const rowHeight = 46;
  const labelWidth = 180;
  const width = 760;
  const barsWidth = width - labelWidth - 90;
  const height = groups.length * rowHeight + 40;
  const values = groups.flatMap((group) => [group.timeToAcknowledge.mean, group.timeToResolve.mean]);
  const max = Math.max(1, ...values.filter((value) => value !== null));
  const bar = (y, value, kind, name, key) => {
    const length = value === null ? 0 : Math.max(2, (value / max) * barsWidth);
    return [
      svg(
        'rect',
        { x: labelWidth, y, width: length, height: 16, class: `bar ${kind}` },
        svg('title', null, `${name} of ${key}: ${formatDuration(value)}`),
      ),
      svg(
        'text',
        { x: labelWidth + length + 6, y: y + 12, class: 'value' },
        value === null ? 'none' : formatDuration(value),
      ),
    ];
  };
  return svg(
    'svg',
    {
      viewBox: `0 0 ${width} ${height}`,
      class: 'chart',
      role: 'img',
      'aria-label': `Mean time to acknowledge and to resolve by ${groupLabel}; the table below has every figure`,
    },
    groups.map((group, index) => {
      const y = index * rowHeight + 8;
      return svg(
        'g',
        null,
        svg('text', { x: 0, y: y + 20, class: 'label' }, String(group.key).slice(0, 24)),
        bar(y, group.timeToAcknowledge.mean, 'mtta', 'MTTA', group.key),
        bar(y + 18, group.timeToResolve.mean, 'mttr', 'MTTR', group.key),
      );
    }),
    svg('rect', { x: labelWidth, y: height - 22, width: 12, height: 12, class: 'bar mtta' }),
    svg('text', { x: labelWidth + 18, y: height - 12, class: 'value' }, 'MTTA (mean time to acknowledge)'),
    svg('rect', { x: labelWidth + 280, y: height - 22, width: 12, height: 12, class: 'bar mttr' }),
    svg('text', { x: labelWidth + 298, y: height - 12, class: 'value' }, 'MTTR (mean time to resolve)'),
  );
}

function table(groups, groupLabel) {
  const times = (figures) =>
    ['mean', 'p50', 'p90', 'p95'].map((name) => h('td', null, formatDuration(figures[name])));
  return h(
    'table',
    { class: 'stats' },
    h('caption', null, `Response times by ${groupLabel.toLowerCase()}`),
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', { scope: 'col', rowspan: '2' }, groupLabel),
        ['Incidents', 'Acknowledged', 'Resolved', 'Cancelled'].map((name) =>
          h('th', { scope: 'col', rowspan: '2' }, name),
        ),
        h('th', { scope: 'colgroup', colspan: '4' }, 'Time to acknowledge'),
        h('th', { scope: 'colgroup', colspan: '4' }, 'Time to resolve'),
      ),
      h(
        'tr',
        null,
        ['mean', 'p50', 'p90', 'p95', 'mean', 'p50', 'p90', 'p95'].map((name) =>
          h('th', { scope: 'col' }, name),
        ),
      ),
    ),
    h(
      'tbody',
      null,
      groups.map((group) =>
        h(
          'tr',
          null,
          h('th', { scope: 'row' }, String(group.key)),
          h('td', null, String(group.incidents)),
          h('td', null, String(group.acknowledged)),
          h('td', null, String(group.resolved)),
          h('td', null, String(group.cancelled)),
          times(group.timeToAcknowledge),
          times(group.timeToResolve),
        ),
      ),
    ),
  );
}

export function statsView({ org, route, api }) {
  let period = periodOf(route.query);
  const from = h('input', { type: 'date', name: 'from' });
  const to = h('input', { type: 'date', name: 'to' });
  const groupBy = h(
    'select',
    { name: 'groupBy' },
    GROUPINGS.map(([value, label]) => h('option', { value }, label)),
  );
  const error = h('p', { class: 'error', role: 'alert' });
  const answered = h('p', { class: 'hint', role: 'status' });
  const result = h('div', { class: 'stats-result' });

  const form = h(
    'form',
    {
      class: 'filters row',
      'aria-label': 'Response-time period',
      onsubmit: (event) => {
        event.preventDefault();
        location.hash = paths.stats(org, { from: from.value, to: to.value, groupBy: groupBy.value });
      },
    },
    field('From', from),
    field('To (inclusive)', to),
    field('Group by', groupBy),
    h('button', { type: 'submit' }, 'Show response times'),
  );

  async function load() {
    from.value = period.from;
    to.value = period.to;
    groupBy.value = period.groupBy;
    error.textContent = '';
    try {
      const { body } = await api.get(`/api/orgs/${encodeURIComponent(org)}/stats/response-times`, {
        groupBy: period.groupBy,
        ...(period.from ? { from: `${period.from}T00:00:00.000Z` } : {}),
        ...(period.to ? { to: nextDay(period.to) } : {}),
      });
      const label = GROUPINGS.find(([value]) => value === period.groupBy)[1];
      answered.textContent = `Incidents declared from ${body.from} up to ${body.to}.`;
      replaceContent(
        result,
        body.groups.length
          ? [chart(body.groups, label.toLowerCase()), table(body.groups, label)]
          : h('p', { class: 'empty' }, 'No incidents were declared in this period.'),
      );
    } catch (failure) {
      error.textContent = `Response times could not be loaded: ${failure.message}`;
    }
  }
  load();

  return {
    title: 'Response times',
    node: h('section', { class: 'page' }, h('h1', null, 'Response times'), form, answered, error, result),
    update(query) {
      period = periodOf(query);
      load();
    },
  };
}
