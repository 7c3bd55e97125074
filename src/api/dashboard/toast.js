// Toasts: short notices in a polite live region (announced by screen readers without
// interrupting), dismissed after a while or with their close button. Hovering or
// focusing a toast keeps it up.

import { el } from './format.js';

/** How long a toast stays, and how many stay at once (a farm starting twenty prints at
 *  the top of the hour should not bury the screen). */
const TOAST_MS = 8000;
const MAX_TOASTS = 5;

export function showToast(kind, title, message) {
  const region = document.getElementById('toasts');
  const close = el('button', { type: 'button', class: 'toast__close', 'aria-label': 'Dismiss notification' }, '×');
  const toast = el(
    'div',
    { class: `toast toast--${kind}` },
    el('div', { class: 'toast__body' }, el('strong', { class: 'toast__title' }, title), el('p', { class: 'toast__message' }, message)),
    close,
  );
  let timer = null;
  const remove = () => {
    clearTimeout(timer);
    toast.remove();
  };
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(remove, TOAST_MS);
  };
  close.addEventListener('click', remove);
  toast.addEventListener('mouseenter', () => clearTimeout(timer));
  toast.addEventListener('mouseleave', arm);
  toast.addEventListener('focusin', () => clearTimeout(timer));
  toast.addEventListener('focusout', arm);
  region.append(toast);
  while (region.children.length > MAX_TOASTS) region.firstElementChild.remove();
  arm();
  return toast;
}
