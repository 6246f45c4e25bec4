/** The war room of one incident: its facts, the moves the lifecycle and the roles allow, the live timeline. */

import { field, h, replaceContent } from '../lib/dom.js';
import { SEVERITY_NAMES, statusName } from '../lib/format.js';
import { follow } from '../lib/live.js';
import { paths } from '../lib/router.js';
import { serialQueue } from '../lib/serial.js';
import {
  badgesOf,
  factsOf,
  moveLabel,
  noteBody,
  primarySignalOf,
  section,
  tagItems,
  ticketItems,
  timesOf,
} from './incident-parts.js';
import { entryKey, timelineEntry } from './timeline.js';

const TIMELINE_PAGE = 500;
/** Entries a live update re-reads at least (see splitLastPage). */
const TAIL_KEPT = 10;

export function incidentView({ org, route, session, api, contract }) {
  const incidentId = route.incidentId;
  const base = `/api/orgs/${encodeURIComponent(org)}/incidents/${encodeURIComponent(incidentId)}`;
  const can = (operation) => session.can(org, operation);
  /** `{ incident, signals, actions, sloViolations }` as last loaded. */
  let details = null;
  /** The timeline by the page it was read in: `{ cursor, entries }`; only the last page is read again. */
  let pages = [];
  const entryNodes = new Map();

  const heading = h('h1', null, 'Loading incident…');
  const badges = h('p', { class: 'badges' });
  const notice = h('p', { class: 'notice', role: 'status' });
  const error = h('p', { class: 'error', role: 'alert' });
  const facts = h('dl', { class: 'facts' });
  const times = h('dl', { class: 'facts' });
  const primary = h('div', { class: 'primary-signal' });
  const tagList = h('ul', { class: 'tags', 'aria-label': 'Tags' });
  const ticketList = h('ul', { class: 'tickets', 'aria-label': 'Tickets' });
  const timelineList = h('ol', { class: 'timeline', 'aria-label': 'Timeline' });
  const timelineCount = h('span', { class: 'count' });
  const liveState = h('span', { class: 'live', role: 'status' });

  /** Runs one write; a 412 (someone else wrote first) reloads and says so; any other error shows its detail. */
  async function write(control, method, path, body, { conditional = false, done } = {}) {
    error.textContent = '';
    notice.textContent = '';
    control.disabled = true;
    try {
      const headers = conditional ? { 'if-match': `"${details.incident.version}"` } : {};
      await api.send(method, `${base}${path}`, body, headers);
      done?.();
      await refresh();
    } catch (failure) {
      if (failure.status === 412) {
        await refresh();
        notice.textContent = `This incident changed before your change reached it, so nothing was changed. It has been reloaded (now version ${details.incident.version}): check it and try again.`;
      } else {
        error.textContent = failure.message;
      }
    } finally {
      control.disabled = false;
    }
  }

  // ---- controls (built once, so what someone is typing survives live updates) --------------------

  const reason = h('input', { type: 'text', name: 'reason', maxlength: '1000' });
  const statusButtons = h('div', { class: 'buttons', role: 'group', 'aria-label': 'Status moves' });
  const statusControls = can('changeStatus')
    ? h(
        'div',
        { class: 'control' },
        statusButtons,
        field('Reason (optional)', reason, 'Sent with a status or severity change'),
      )
    : null;

  const severitySelect = h(
    'select',
    { name: 'newSeverity' },
    contract.severities.map((value) => h('option', { value }, SEVERITY_NAMES[value] ?? value)),
  );
  let shownSeverity = null;
  const severityButton = h(
    'button',
    {
      type: 'button',
      onclick: () =>
        write(
          severityButton,
          'POST',
          '/severity',
          {
            newSeverity: severitySelect.value,
            ...(reason.value.trim() ? { reason: reason.value.trim() } : {}),
          },
          { conditional: true, done: () => (reason.value = '') },
        ),
    },
    'Change severity',
  );
  const severityControls = can('changeSeverity')
    ? h('div', { class: 'control row' }, field('New severity', severitySelect), severityButton)
    : null;

  const note = h('textarea', { name: 'note', rows: '3', maxlength: '10000' });
  const noteButton = h('button', { type: 'submit' }, 'Add note');
  const noteForm = h(
    'form',
    {
      class: 'control',
      'aria-label': 'Add a note',
      onsubmit: (event) => {
        event.preventDefault();
        if (!note.value.trim()) {
          error.textContent = 'Write the note first.';
          note.focus();
          return;
        }
        write(noteButton, 'POST', '/actions', noteBody(note.value), { done: () => (note.value = '') });
      },
    },
    field('Note', note),
    noteButton,
  );

  const newTag = h('input', { type: 'text', name: 'tag', maxlength: '64', autocomplete: 'off' });
  const tagButton = h('button', { type: 'submit' }, 'Add tag');
  const tagForm = h(
    'form',
    {
      class: 'control row',
      'aria-label': 'Add a tag',
      onsubmit: (event) => {
        event.preventDefault();
        write(tagButton, 'POST', '/tags', { tag: newTag.value.trim() }, { done: () => (newTag.value = '') });
      },
    },
    field('New tag', newTag),
    tagButton,
  );

  const ticketSystem = h('input', {
    type: 'text',
    name: 'system',
    value: 'JIRA',
    maxlength: '50',
    required: true,
  });
  const ticketKey = h('input', { type: 'text', name: 'key', maxlength: '200', required: true });
  const ticketUrl = h('input', { type: 'url', name: 'url', maxlength: '2000', placeholder: 'https://' });
  const ticketButton = h('button', { type: 'submit' }, 'Link ticket');
  const ticketForm = h(
    'form',
    {
      class: 'control row',
      'aria-label': 'Link a ticket',
      onsubmit: (event) => {
        event.preventDefault();
        write(
          ticketButton,
          'POST',
          '/tickets',
          {
            system: ticketSystem.value.trim(),
            key: ticketKey.value.trim(),
            ...(ticketUrl.value.trim() ? { url: ticketUrl.value.trim() } : {}),
          },
          {
            done: () => {
              ticketKey.value = '';
              ticketUrl.value = '';
            },
          },
        );
      },
    },
    field('Ticket system', ticketSystem),
    field('Ticket key', ticketKey),
    field('Ticket URL (optional)', ticketUrl),
    ticketButton,
  );
  const writes = can('writeIncidents');

  // ---- rendering what was loaded --------------------------------------------------------------

  function renderIncident() {
    const { incident, signals } = details;
    heading.textContent = incident.title;
    document.title = `${incident.title} · ITS`;
    replaceContent(badges, badgesOf(incident));
    replaceContent(facts, factsOf(incident));
    renderTimes();

    if (statusControls) {
      const moves = contract.transitions[incident.status] ?? [];
      replaceContent(
        statusButtons,
        moves.length
          ? moves.map((to) => {
              const button = h(
                'button',
                { type: 'button', class: `move ${to}`, 'data-focus-key': `move-${to}` },
                moveLabel(incident.status, to),
              );
              button.addEventListener('click', () =>
                write(
                  button,
                  'POST',
                  '/status',
                  { newStatus: to, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) },
                  { conditional: true, done: () => (reason.value = '') },
                ),
              );
              return button;
            })
          : h('span', { class: 'hint' }, `${statusName(incident.status)} is final: no moves left.`),
      );
    }
    if (severityControls && shownSeverity !== incident.severity) {
      severitySelect.value = incident.severity;
      shownSeverity = incident.severity;
    }

    replaceContent(tagList, tagItems(incident.tags, writes ? removeTagButton : null));
    replaceContent(ticketList, ticketItems(incident.externalRefs));
    replaceContent(primary, primarySignalOf(incident, signals));
  }

  function removeTagButton(tag) {
    const remove = h(
      'button',
      { type: 'button', class: 'small', 'aria-label': `Remove tag ${tag}`, 'data-focus-key': `tag-${tag}` },
      'Remove',
    );
    remove.addEventListener('click', () => write(remove, 'DELETE', `/tags/${encodeURIComponent(tag)}`));
    return remove;
  }

  function renderTimes() {
    replaceContent(times, timesOf(details.incident));
  }

  /** Adds the entries not on the page yet, in order; entries already shown keep their node (and open labels). */
  function renderTimeline() {
    const entries = pages.flatMap((page) => page.entries);
    const seen = new Set();
    let cursor = timelineList.firstElementChild;
    for (const entry of entries) {
      const key = entryKey(entry);
      seen.add(key);
      let node = entryNodes.get(key);
      if (!node) {
        node = timelineEntry(entry);
        entryNodes.set(key, node);
      }
      if (node !== cursor) timelineList.insertBefore(node, cursor);
      else cursor = cursor.nextElementSibling;
    }
    for (const [key, node] of entryNodes) {
      if (seen.has(key)) continue;
      node.remove();
      entryNodes.delete(key);
    }
    timelineCount.textContent = `${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}`;
  }

  // ---- loading ----------------------------------------------------------------------------------

  /** Reads the timeline from a cursor (null: the start) to its end. */
  async function readTimeline(startCursor) {
    const read = [];
    let cursor = startCursor;
    for (;;) {
      const { body } = await api.get(`${base}/timeline`, { limit: TIMELINE_PAGE, cursor });
      read.push({ cursor, entries: body.entries });
      if (!body.nextCursor || body.entries.length === 0) return read;
      cursor = body.nextCursor;
    }
  }

  /** Re-reads the incident and the timeline from its last page on; each part is shown as soon as it arrives. */
  async function loadEverything() {
    const last = pages.length - 1;
    await Promise.all([
      api.get(base).then(({ body }) => {
        details = body;
        renderIncident();
      }),
      readTimeline(last >= 0 ? pages[last].cursor : null).then((tail) => {
        pages = [...pages.slice(0, Math.max(last, 0)), ...tail];
        renderTimeline();
      }),
    ]);
  }

  /**
   * A cursor only points after the last entry of a page that has more behind it, so a live update
   * re-reads the whole last page. Reading that page again with a smaller limit once gives a cursor
   * just before its last few entries, and each later update reads only those and what is new.
   */
  async function splitLastPage() {
    const last = pages.at(-1);
    if (!last || last.entries.length <= TAIL_KEPT * 2) return;
    const { body } = await api.get(`${base}/timeline`, {
      limit: last.entries.length - TAIL_KEPT,
      cursor: last.cursor,
    });
    if (!body.nextCursor || pages.at(-1) !== last) return;
    pages.splice(
      -1,
      1,
      { cursor: last.cursor, entries: body.entries },
      { cursor: body.nextCursor, entries: last.entries.slice(body.entries.length) },
    );
  }

  const run = serialQueue();
  /** Reloads what is shown; calls made during a reload cause one more after it. */
  const refresh = () =>
    run('reload', async () => {
      try {
        await loadEverything();
        await splitLastPage();
      } catch (failure) {
        error.textContent = `The incident could not be reloaded: ${failure.message}`;
      }
    });

  let stream = null;
  let stopped = false;
  const timesTimer = setInterval(() => details && renderTimes(), 30_000);

  const node = h(
    'article',
    { class: 'page war-room' },
    h('div', { class: 'heading' }, heading, badges),
    notice,
    error,
    h(
      'div',
      { class: 'columns', hidden: true },
      h(
        'div',
        { class: 'side' },
        section('Facts', facts),
        section('Times', times),
        statusControls || severityControls || writes
          ? section('Act', statusControls, severityControls, writes ? noteForm : null)
          : null,
        section('Tags', tagList, writes ? tagForm : null),
        section('Tickets', ticketList, writes ? ticketForm : null),
        section('Primary signal', primary),
        can('readEvents')
          ? h('p', null, h('a', { href: paths.audit(org, incidentId) }, 'Raw events (audit)'))
          : null,
      ),
      h(
        'section',
        { class: 'main-column' },
        h('div', { class: 'heading' }, h('h2', { tabindex: '-1' }, 'Timeline'), timelineCount, liveState),
        timelineList,
      ),
    ),
  );

  (async () => {
    try {
      await run('reload', loadEverything);
    } catch (failure) {
      heading.textContent =
        failure.status === 404 ? 'Incident not found' : 'The incident could not be loaded';
      error.textContent = failure.message;
      return;
    }
    node.querySelector('.columns').hidden = false;
    // Marked once the frame with the timeline has been painted: what the browser test measures.
    requestAnimationFrame(() =>
      setTimeout(() => performance.mark('its:war-room-ready', { detail: { entries: entryNodes.size } })),
    );
    if (stopped) return;
    run('split', () => splitLastPage().catch(() => {}));
    // After the version on screen (fromVersion is inclusive): what came since, then live events.
    stream = follow(`${base}/stream?fromVersion=${details.incident.version + 1}`, {
      token: api.token,
      onEvent: (event) => {
        if (typeof event.version !== 'number' || event.version > details.incident.version) refresh();
      },
      onState: (state, why) => {
        liveState.dataset.state = state;
        liveState.textContent =
          state === 'live'
            ? 'Live'
            : state === 'reconnecting'
              ? `Reconnecting (${why})…`
              : state === 'connecting'
                ? 'Connecting…'
                : '';
      },
    });
  })();

  return {
    title: 'Incident',
    node,
    dispose() {
      stopped = true;
      stream?.stop();
      clearInterval(timesTimer);
    },
  };
}
