/** The war room's shell: session, header, and which view the URL fragment names. */

import contract from './contract.js';
import { createApi } from './lib/api.js';
import { h } from './lib/dom.js';
import { parseRoute, paths } from './lib/router.js';
import { Session, forgetToken, readClaims, storeToken, storedToken } from './lib/session.js';
import { auditView } from './views/audit.js';
import { declareView } from './views/declare.js';
import { incidentView } from './views/incident.js';
import { listView } from './views/list.js';
import { signInView } from './views/signin.js';
import { statsView } from './views/stats.js';

const VIEWS = {
  list: listView,
  declare: declareView,
  incident: incidentView,
  audit: auditView,
  stats: statsView,
};

const header = document.getElementById('top');
const main = document.getElementById('main');

/** The view on screen: `{ route, view }`; a view may have `dispose()` and `update(query)`. */
let current = null;
/** Why the sign-in page is showing (signed out, token refused, session expired). */
let signInReason = null;

function currentSession() {
  const token = storedToken();
  if (!token) return null;
  try {
    return new Session(token, readClaims(token), contract);
  } catch (error) {
    forgetToken();
    signInReason = `Signed out: ${error.message}.`;
    return null;
  }
}

/** Checks a token against ITS before keeping it, so a mistyped one is refused with the server's reason. */
async function signIn(token) {
  const candidate = new Session(token, readClaims(token), contract);
  await createApi(token, () => {}).get(`/api/orgs/${encodeURIComponent(candidate.orgs[0])}/incidents`, {
    limit: 1,
  });
  storeToken(token);
  signInReason = null;
}

function endSession(reason) {
  forgetToken();
  signInReason = reason;
  history.replaceState(null, '', location.pathname);
  render();
}

function sameScreen(a, b) {
  return a.name === b.name && a.org === b.org && a.incidentId === b.incidentId;
}

function render() {
  const route = parseRoute(location.hash);
  if (current && sameScreen(current.route, route) && current.view.update) {
    current.route = route;
    current.view.update(route.query);
    return;
  }
  current?.view.dispose?.();
  current = null;

  const session = currentSession();
  if (!session) {
    renderHeader(null, route);
    show(
      signInView({
        reason: signInReason,
        signIn: async (token) => {
          await signIn(token);
          render();
        },
      }),
      route,
    );
    return;
  }
  if (!route.org) {
    location.replace(paths.list(session.orgs[0]));
    return;
  }
  renderHeader(session, route);
  if (!session.orgs.includes(route.org)) {
    show(
      messageView('No access', `Your token grants no access to organization ${route.org}.`, session),
      route,
    );
    return;
  }
  const make = VIEWS[route.name];
  if (!make) {
    show(messageView('Not found', 'There is no page at this address.', session), route);
    return;
  }
  const api = createApi(session.token, (reason) => endSession(`Signed out: ${reason}.`));
  show(make({ org: route.org, route, session, api, contract, endSession }), route);
}

function show(view, route) {
  current = { route, view };
  main.replaceChildren(view.node);
  document.title = `${view.title} · ITS`;
  // A new screen moves focus to its heading, so keyboard and screen-reader users start at the top of it.
  const heading = main.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

function messageView(title, text, session) {
  return {
    title,
    node: h(
      'section',
      { class: 'page' },
      h('h1', null, title),
      h('p', null, text),
      h(
        'ul',
        null,
        session.orgs.map((org) => h('li', null, h('a', { href: paths.list(org) }, `Incidents of ${org}`))),
      ),
    ),
  };
}

function renderHeader(session, route) {
  const brand = h(
    'a',
    { class: 'brand', href: session ? paths.list(route.org ?? session.orgs[0]) : '#' },
    'ITS war room',
  );
  if (!session) {
    header.replaceChildren(brand);
    return;
  }
  const org = route.org ?? session.orgs[0];
  const navLink = (label, href, names) =>
    h('a', { href, 'aria-current': names.includes(route.name) ? 'page' : null }, label);
  const nav = h(
    'nav',
    { 'aria-label': 'Main' },
    navLink('Incidents', paths.list(org), ['list', 'incident', 'audit']),
    session.can(org, 'writeIncidents') ? navLink('Declare incident', paths.declare(org), ['declare']) : null,
    navLink('Response times', paths.stats(org), ['stats']),
  );
  const orgControl =
    session.orgs.length > 1
      ? h(
          'label',
          { class: 'org' },
          'Organization ',
          h(
            'select',
            { onchange: (event) => (location.hash = paths.list(event.target.value)) },
            session.orgs.map((name) => h('option', { value: name, selected: name === org }, name)),
          ),
        )
      : h('span', { class: 'org' }, 'Organization ', h('strong', null, org));
  const who = h(
    'div',
    { class: 'who' },
    h('span', null, 'Signed in as ', h('strong', { 'data-testid': 'who' }, session.name)),
    orgControl,
    h('span', { class: 'roles' }, session.roles(org).join(', ') || 'no role'),
    h('button', { type: 'button', onclick: () => endSession('You signed out.') }, 'Sign out'),
  );
  header.replaceChildren(brand, nav, who);
}

async function boot() {
  // The development link carries a token in the fragment, which never reaches the server or its logs.
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (match) {
    history.replaceState(null, '', location.pathname);
    try {
      await signIn(decodeURIComponent(match[1]));
    } catch (error) {
      signInReason = `The link’s token was refused: ${error.message}.`;
    }
  }
  window.addEventListener('hashchange', render);
  render();
}

boot().catch((error) => {
  main.replaceChildren(h('p', { role: 'alert' }, `The war room failed to start: ${error.message}`));
});
