/** The parts of a war room drawn from one incident's details: pure builders of DOM nodes. */

import { h } from '../lib/dom.js';
import { formatDuration, formatTime, secondsBetween, statusName } from '../lib/format.js';

/** What a status move is called on its button. */
export function moveLabel(from, to) {
  if (to === 'INVESTIGATING')
    return from === 'OPEN' ? 'Acknowledge' : from === 'RESOLVED' ? 'Reopen' : 'Back to investigating';
  if (to === 'MITIGATED') return 'Mitigate';
  if (to === 'RESOLVED') return 'Resolve';
  if (to === 'CANCELLED') return 'Cancel incident';
  return statusName(to);
}

/** A note's label is its first line (the API allows 200 characters); the full text goes in the details. */
export function noteBody(text) {
  const trimmed = text.trim();
  const firstLine = trimmed.split('\n')[0].trim();
  const label = firstLine.length > 200 ? `${firstLine.slice(0, 199)}…` : firstLine;
  return { actionKind: 'NOTE', label, ...(label === trimmed ? {} : { details: trimmed }) };
}

let sectionCount = 0;
/** A titled region of the page (a landmark named by its heading). */
export function section(title, ...children) {
  const id = `section-${++sectionCount}`;
  return h('section', { 'aria-labelledby': id }, h('h2', { id, tabindex: '-1' }, title), ...children);
}

/** Severity, status and version, as badges beside the title. */
export function badgesOf(incident) {
  return [
    h('span', { class: `badge sev ${incident.severity}`, 'data-testid': 'severity' }, incident.severity),
    ' ',
    h(
      'span',
      { class: `badge status ${incident.status}`, 'data-testid': 'status' },
      statusName(incident.status),
    ),
    h('span', { class: 'version' }, ` version ${incident.version}`),
  ];
}

/** The incident's fields, as `<dt>`/`<dd>` pairs (absent ones left out). */
export function factsOf(incident) {
  const fact = (name, value) => (value ? [h('dt', null, name), h('dd', null, value)] : null);
  return [
    fact('Service', incident.serviceName),
    fact('Environment', incident.environment),
    fact('Project', incident.projectId),
    fact('Detected by', incident.detectedBy),
    fact('Runbook', incident.runbookPath),
    fact('Declared by', `${incident.createdBy.ref} (${incident.createdBy.type.toLowerCase()})`),
    fact('Correlation keys', incident.correlationKeys.join(', ')),
    fact(
      'Description',
      incident.description ? h('span', { class: 'description' }, incident.description) : null,
    ),
  ];
}

/** When it was declared, acknowledged, mitigated, resolved (or cancelled), each with the time since declaring. */
export function timesOf(incident) {
  const at = (iso) =>
    iso
      ? [
          h('time', { datetime: iso }, formatTime(iso)),
          h('span', { class: 'who' }, ` after ${formatDuration(secondsBetween(incident.createdAt, iso))}`),
        ]
      : h('span', { class: 'hint' }, 'not yet');
  const ended = incident.resolvedAt ?? incident.cancelledAt;
  return [
    h('dt', null, 'Declared'),
    h('dd', null, h('time', { datetime: incident.createdAt }, formatTime(incident.createdAt))),
    h('dt', null, 'Acknowledged'),
    h('dd', null, at(incident.acknowledgedAt)),
    h('dt', null, 'Mitigated'),
    h('dd', null, at(incident.mitigatedAt)),
    h('dt', null, 'Resolved'),
    h('dd', null, at(incident.resolvedAt)),
    incident.cancelledAt ? [h('dt', null, 'Cancelled'), h('dd', null, at(incident.cancelledAt))] : null,
    h('dt', null, ended ? 'Lasted' : 'Open for'),
    h('dd', null, formatDuration(secondsBetween(incident.createdAt, ended))),
  ];
}

/** One list item per tag, each with the button `removeButton(tag)` makes (none when it is null). */
export function tagItems(tags, removeButton) {
  if (tags.length === 0) return h('li', { class: 'hint' }, 'No tags.');
  return tags.map((tag) =>
    h('li', null, h('span', { class: 'tag' }, tag), removeButton ? removeButton(tag) : null),
  );
}

/** Linked tickets, as links where they have a URL (the API accepts only http(s) ones). */
export function ticketItems(refs) {
  if (refs.length === 0) return h('li', { class: 'hint' }, 'No tickets linked.');
  return refs.map((ref) =>
    h(
      'li',
      null,
      ref.url
        ? h('a', { href: ref.url, target: '_blank', rel: 'noopener noreferrer' }, `${ref.system} ${ref.key}`)
        : `${ref.system} ${ref.key}`,
      h('span', { class: 'who' }, ` linked ${formatTime(ref.linkedAt)}`),
    ),
  );
}

/** The signal that opened the incident, if one has come. */
export function primarySignalOf(incident, signals) {
  const signal = signals.find((candidate) => candidate.id === incident.primarySignalId);
  if (!signal) return h('p', { class: 'hint' }, 'No signal yet.');
  return h(
    'p',
    null,
    h('span', { class: `badge kind ${signal.signalType}` }, signal.signalType),
    ` ${signal.summary} `,
    h('span', { class: 'who' }, `from ${signal.source}, ${formatTime(signal.ts)}`),
  );
}
