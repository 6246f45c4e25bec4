/** Declare an incident: the fields of `POST /api/orgs/:orgId/incidents`. */

import { idempotencyKey } from '../lib/api.js';
import { field, h } from '../lib/dom.js';
import { SEVERITY_NAMES } from '../lib/format.js';
import { paths } from '../lib/router.js';

export function declareView({ org, api, contract, session }) {
  if (!session.can(org, 'writeIncidents')) {
    return {
      title: 'Declare an incident',
      node: h(
        'section',
        { class: 'page narrow' },
        h('h1', null, 'Declare an incident'),
        h(
          'p',
          null,
          `Your roles in ${org} may not declare incidents; ${contract.operationRoles.writeIncidents.join(', ')} may.`,
        ),
      ),
    };
  }
  // One key per form: a double submit, or a retry after a lost answer, declares the incident once.
  const key = idempotencyKey();
  const input = (name, props = {}) => h('input', { name, type: 'text', required: true, ...props });
  const title = input('title', { maxlength: '200' });
  const service = input('serviceName', { maxlength: '200' });
  const severity = h(
    'select',
    { name: 'severity' },
    contract.severities.map((value) =>
      h('option', { value, selected: value === 'SEV3' }, SEVERITY_NAMES[value] ?? value),
    ),
  );
  const environment = input('environment', { maxlength: '100', value: 'production' });
  const project = input('projectId', { maxlength: '200', value: 'default' });
  const description = h('textarea', { name: 'description', rows: '5', maxlength: '10000' });
  const tags = input('tags', { required: false });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Declare incident');

  const form = h(
    'form',
    {
      'aria-label': 'Declare an incident',
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        const tagList = tags.value.split(/[\s,]+/).filter(Boolean);
        try {
          const { body } = await api.send(
            'POST',
            `/api/orgs/${encodeURIComponent(org)}/incidents`,
            {
              title: title.value,
              serviceName: service.value,
              severity: severity.value,
              environment: environment.value,
              projectId: project.value,
              ...(description.value.trim() ? { description: description.value } : {}),
              ...(tagList.length ? { tags: tagList } : {}),
            },
            { 'idempotency-key': key },
          );
          location.hash = paths.incident(org, body.incidentId);
        } catch (failure) {
          error.textContent = `Not declared: ${failure.message}`;
          submit.disabled = false;
        }
      },
    },
    field('Title', title),
    h('div', { class: 'row' }, field('Service', service), field('Severity', severity)),
    h('div', { class: 'row' }, field('Environment', environment), field('Project', project)),
    field('Description', description),
    field('Tags', tags, 'Optional; separated by spaces or commas, e.g. latency db'),
    h('div', { class: 'row' }, submit, h('a', { href: paths.list(org) }, 'Back to the list')),
    error,
  );
  return {
    title: 'Declare an incident',
    node: h('section', { class: 'page narrow' }, h('h1', null, 'Declare an incident'), form),
  };
}
