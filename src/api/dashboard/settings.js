// Settings: the auto-creation switch and the monitoring interval, read with
// `GET /api/v1/settings`, saved with `PUT /api/v1/settings` (only the key that changed),
// and kept in step with other clients through `settings_updated`.

import { api } from './api.js';

export class SettingsView {
  constructor() {
    this.toggle = document.getElementById('auto-create');
    this.interval = document.getElementById('monitoring-interval');
    this.save = document.getElementById('save-interval');
    this.status = document.getElementById('settings-status');
    this.form = document.getElementById('settings-form');
    this.current = null;
    this.toggle.addEventListener('change', () => this.saveToggle());
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.saveInterval();
    });
    // The interval being typed is not overwritten by another client's change.
    this.interval.addEventListener('input', () => {
      this.interval.dataset.dirty = 'true';
    });
  }

  async load() {
    try {
      this.show(await api.getSettings());
    } catch {
      // The banner (unreachable) or the key dialog (401/403) says why.
    }
  }

  /** The whole settings object, from a GET or a `settings_updated` event. */
  show(s) {
    if (!s) return;
    this.current = s;
    this.toggle.checked = !!s.job_creation_auto_create;
    this.toggle.disabled = false;
    if (this.interval.dataset.dirty !== 'true') this.interval.value = s.monitoring_interval;
    this.interval.disabled = false;
    this.save.disabled = false;
  }

  say(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle('error', isError);
  }

  async saveToggle() {
    const want = this.toggle.checked;
    this.toggle.disabled = true;
    this.say('Saving…');
    try {
      await api.updateSettings({ job_creation_auto_create: want });
      this.current = { ...this.current, job_creation_auto_create: want };
      this.say(want ? 'Saved: jobs are created automatically.' : 'Saved: jobs are no longer created automatically.');
    } catch (e) {
      this.toggle.checked = !want;
      this.say(`Not saved: ${e.message}`, true);
    } finally {
      this.toggle.disabled = false;
    }
  }

  async saveInterval() {
    if (!this.interval.reportValidity()) return;
    const value = Number(this.interval.value);
    this.save.disabled = true;
    this.say('Saving…');
    try {
      await api.updateSettings({ monitoring_interval: value });
      delete this.interval.dataset.dirty;
      this.current = { ...this.current, monitoring_interval: value };
      this.say(`Saved: printers are polled every ${value} s.`);
    } catch (e) {
      this.say(`Not saved: ${e.message}`, true);
    } finally {
      this.save.disabled = false;
    }
  }
}
