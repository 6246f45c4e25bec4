/** Tiny DOM builders: the page never parses HTML from strings (the CSP refuses innerHTML outright). */

const PROPERTIES = new Set(['value', 'checked', 'selected', 'disabled', 'hidden', 'required', 'open']);

function apply(element, props) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') element.addEventListener(key.slice(2), value);
    else if (PROPERTIES.has(key)) element[key] = value;
    else element.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** `h('button', { type: 'button', onclick }, 'Resolve')`: an HTML element with attributes, listeners and children. */
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  apply(element, props);
  append(element, children);
  return element;
}

const SVG = 'http://www.w3.org/2000/svg';

/** The same for SVG elements (the response-time chart). */
export function svg(tag, props, ...children) {
  const element = document.createElementNS(SVG, tag);
  apply(element, props);
  append(element, children);
  return element;
}

/** Replaces an element's children, keeping focus near where it was when the focused control goes away. */
export function replaceContent(element, ...children) {
  const hadFocus = element.contains(document.activeElement);
  const focusKey = hadFocus ? document.activeElement?.dataset?.focusKey : undefined;
  element.replaceChildren();
  append(element, children);
  if (!hadFocus) return;
  const again = focusKey ? element.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`) : null;
  (again ?? element.closest('section')?.querySelector('h2') ?? element).focus();
}

/** A labelled form field: `<label for>` + the control, so every control has an accessible name. */
let fieldCount = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldCount}`;
  control.id = id;
  const hintNode = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute('aria-describedby', hintNode.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintNode);
}
