// API keys (admin only): the list from `GET /api/v1/keys` (never a secret), a form that
// makes one with `POST /api/v1/keys` and shows its key once, and a revoke button per key
// (`DELETE /api/v1/keys/{id}`). The section is hidden for other roles (style.css).

import { api } from './api.js';
import { el, formatDateTime } from './format.js';
import { showToast } from './toast.js';

const ROLE_LABELS = { viewer: 'Viewer', operator: 'Operator', admin: 'Admin' };
const STATUS_LABELS = { active: 'Active', expired: 'Expired', revoked: 'Revoked' };

export class KeysView {
  constructor() {
    this.section = document.getElementById('keys');
    this.rows = document.getElementById('key-rows');
    this.empty = document.getElementById('keys-empty');
    this.error = document.getElementById('keys-error');
    this.form = document.getElementById('key-create-form');
    this.made = document.getElementById('key-made');
    this.madeValue = document.getElementById('key-made-value');
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.create();
    });
    this.rows.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-action="revoke"]');
      if (b) this.revoke(b.closest('tr').dataset.keyId, b);
    });
  }

  async load() {
    try {
      const { keys } = await api.listKeys();
      this.show(keys);
      this.error.hidden = true;
    } catch (e) {
      if (e.status === 403) return; // not an admin: the section is hidden anyway
      this.error.textContent = e.message;
      this.error.hidden = false;
    }
  }

  show(keys) {
    this.rows.replaceChildren(
      ...keys.map((k) =>
        el(
          'tr',
          { dataset: { keyId: k.id, status: k.status } },
          el('td', { 'data-label': 'Name' }, k.name),
          el('td', { 'data-label': 'Role' }, ROLE_LABELS[k.role] ?? k.role),
          el('td', { 'data-label': 'Status' }, STATUS_LABELS[k.status] ?? k.status),
          el('td', { 'data-label': 'Created' }, formatDateTime(k.created_at)),
          el('td', { 'data-label': 'Last used' }, k.last_used_at ? formatDateTime(k.last_used_at) : 'Never'),
          el('td', { 'data-label': 'Expires' }, k.expires_at ? formatDateTime(k.expires_at) : 'Never'),
          el(
            'td',
            { class: 'actions' },
            k.status === 'revoked'
              ? null
              : el('button', { type: 'button', class: 'button small danger-outline', dataset: { action: 'revoke' }, 'aria-label': `Revoke ${k.name}` }, 'Revoke'),
          ),
        ),
      ),
    );
    this.empty.hidden = keys.length > 0;
  }

  async create() {
    const name = document.getElementById('new-key-name').value.trim();
    const role = document.getElementById('new-key-role').value;
    const days = Number(document.getElementById('new-key-expiry').value);
    const fields = { name, role };
    if (days > 0) fields.expires_at = new Date(Date.now() + days * 86_400_000).toISOString();
    try {
      const made = await api.createKey(fields);
      // Shown once: the daemon keeps only a hash of it.
      this.madeValue.value = made.key;
      this.made.hidden = false;
      this.madeValue.focus();
      this.madeValue.select();
      this.form.reset();
      this.error.hidden = true;
      await this.load();
    } catch (e) {
      this.error.textContent = e.message;
      this.error.hidden = false;
    }
  }

  async revoke(id, button) {
    button.disabled = true;
    try {
      await api.revokeKey(id);
      showToast('success', 'Key revoked', 'Requests with it are refused from now on.');
      await this.load();
    } catch (e) {
      button.disabled = false;
      this.error.textContent = e.message;
      this.error.hidden = false;
    }
  }
}
