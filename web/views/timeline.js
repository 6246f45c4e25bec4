/** One entry of an incident's timeline (LIVE.md): an action, a signal or an SLO violation. */

import { h } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';

const ACTION_NAMES = {
  NOTE: 'Note',
  STATUS_CHANGE: 'Status',
  SEVERITY_CHANGE: 'Severity',
  TICKET_LINK: 'Ticket',
  PLAYBOOK: 'Playbook',
  COMMAND: 'Command',
  ESCALATION: 'Escalation',
  COMMUNICATION: 'Communication',
  OTHER: 'Action',
};

/** The key that identifies an entry across reloads of the timeline. */
export function entryKey(entry) {
  return `${entry.kind}:${entry.id ?? `${entry.version}:${entry.ts}`}`;
}

const text = (value) => (typeof value === 'string' ? value : JSON.stringify(value));

function pairs(object) {
  return h(
    'dl',
    { class: 'pairs' },
    Object.entries(object).map(([key, value]) => [h('dt', null, key), h('dd', null, text(value))]),
  );
}

let disclosureCount = 0;

/** A signal's labels (an alert's) or its data, shown when asked for. */
function signalData(entry) {
  const data = entry.data;
  if (!data || typeof data !== 'object' || Object.keys(data).length === 0) return [];
  const labels = data.labels && typeof data.labels === 'object' ? data.labels : null;
  const id = `signal-data-${++disclosureCount}`;
  const body = h(
    'div',
    { id, class: 'signal-data', hidden: true },
    labels ? [h('h4', null, 'Labels'), pairs(labels)] : pairs(data),
    labels && data.annotations && typeof data.annotations === 'object'
      ? [h('h4', null, 'Annotations'), pairs(data.annotations)]
      : null,
  );
  const what = labels ? 'labels' : 'data';
  const button = h(
    'button',
    {
      type: 'button',
      class: 'small',
      'aria-expanded': 'false',
      'aria-controls': id,
      'aria-label': `Show ${what} of ${entry.summary}`,
      onclick: () => {
        const open = body.hidden;
        body.hidden = !open;
        button.setAttribute('aria-expanded', String(open));
        button.textContent = open ? `Hide ${what}` : `Show ${what}`;
        button.setAttribute('aria-label', `${open ? 'Hide' : 'Show'} ${what} of ${entry.summary}`);
      },
    },
    `Show ${what}`,
  );
  return [button, body];
}

export function timelineEntry(entry) {
  const time = h('time', { datetime: entry.ts }, formatTime(entry.ts));
  if (entry.kind === 'signal') {
    return h(
      'li',
      { class: 'entry signal' },
      time,
      h('span', { class: `badge kind ${entry.signalType}` }, `Signal ${entry.signalType}`),
      h('span', { class: 'what' }, entry.summary),
      h('span', { class: 'who' }, `from ${entry.source}`),
      signalData(entry),
    );
  }
  if (entry.kind === 'slo_violation') {
    const consumed = `${(Number(entry.errorBudgetConsumed) * 100).toFixed(1)}% of the error budget`;
    return h(
      'li',
      { class: 'entry slo' },
      time,
      h('span', { class: 'badge kind slo' }, 'SLO'),
      h(
        'span',
        { class: 'what' },
        `${entry.sloId}: ${consumed}${entry.thresholdBreached ? ', threshold breached' : ''}`,
      ),
      h('span', { class: 'who' }, `window ${formatTime(entry.windowStart)} – ${formatTime(entry.windowEnd)}`),
      entry.details ? h('p', { class: 'details' }, entry.details) : null,
    );
  }
  return h(
    'li',
    { class: `entry action ${entry.actionKind}` },
    time,
    h(
      'span',
      { class: `badge kind ${entry.actionKind}` },
      ACTION_NAMES[entry.actionKind] ?? entry.actionKind,
    ),
    h('span', { class: 'what' }, entry.label),
    entry.actorRef ? h('span', { class: 'who' }, `by ${entry.actorRef}`) : null,
    entry.details ? h('p', { class: 'details' }, entry.details) : null,
  );
}
