/** Sign in with a pasted token (or the development link's, handled by the shell). */

import { field, h } from '../lib/dom.js';

export function signInView({ reason, signIn }) {
  const token = h('textarea', {
    name: 'token',
    rows: '4',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    autocapitalize: 'off',
  });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      'aria-label': 'Sign in',
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        try {
          await signIn(token.value.trim());
        } catch (failure) {
          error.textContent = `Not signed in: ${failure.message}.`;
          submit.disabled = false;
          token.focus();
        }
      },
    },
    field(
      'Token',
      token,
      'A JWT from `its token --sub you --org acme:SRE_LEAD`. It is kept in this tab only.',
    ),
    submit,
    error,
  );
  return {
    title: 'Sign in',
    node: h(
      'section',
      { class: 'page narrow' },
      h('h1', null, 'Sign in to ITS'),
      reason ? h('p', { class: 'notice', role: 'status' }, reason) : null,
      h(
        'p',
        null,
        'Paste a token, or open the link that ',
        h('code', null, 'npm start'),
        ' prints in development.',
      ),
      form,
    ),
  };
}
