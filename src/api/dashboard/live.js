// The live connection to /ws.
//
// Events arrive as `{"type","data","timestamp","seq"}` and are re-dispatched here as DOM
// events named after their type, with `data` as `detail`. The connection reconnects on
// its own with exponential backoff and jitter (so a hundred wall displays do not all
// knock at once after a daemon restart); the backoff resets only once a connection has
// stayed up for a while, so a daemon that accepts and drops at once is not hammered.
// Every successful (re)connection fires `open`: the app re-reads what it shows then,
// since whatever happened while it was away was not sent to it.
//
// A ping every so often detects a connection that died silently (a sleeping laptop, a
// NAT that forgot it): if nothing arrives within the deadline, it is closed and redone.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30000;
/** A connection that lasted this long counts as healthy: the next failure starts the
 *  backoff from the beginning. */
const STABLE_MS = 10000;
const PING_EVERY_MS = 25000;
const PONG_DEADLINE_MS = 10000;

export class Live extends EventTarget {
  /** `url` is a function returning `{url, protocols}`, so a newly entered API key is used
   *  on the next attempt. */
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.openedAt = 0;
    this.lastMessageAt = 0;
    this.nextRetryAt = 0;
    this.state = 'connecting';
  }

  start() {
    window.addEventListener('online', () => this.retryNow());
    this.connect();
  }

  /** Skips the rest of the backoff wait. */
  retryNow() {
    if (this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  /** Drops the connection and makes a new one at once (after a new API key, say). */
  restart() {
    this.attempt = 0;
    if (this.ws) this.ws.close();
    else this.retryNow();
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, attempt: this.attempt, nextRetryAt: this.nextRetryAt } }));
  }

  connect() {
    this.setState('connecting');
    let ws;
    try {
      const { url, protocols } = this.url();
      ws = new WebSocket(url, protocols);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.openedAt = Date.now();
      this.lastMessageAt = this.openedAt;
      this.setState('open');
      this.dispatchEvent(new Event('open'));
      this.pingTimer = setInterval(() => this.heartbeat(), PING_EVERY_MS);
    });
    ws.addEventListener('message', (m) => {
      this.lastMessageAt = Date.now();
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      if (typeof msg?.type !== 'string') return;
      this.dispatchEvent(new CustomEvent(msg.type, { detail: msg.data }));
    });
    ws.addEventListener('close', () => {
      clearInterval(this.pingTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.openedAt && Date.now() - this.openedAt >= STABLE_MS) this.attempt = 0;
      this.openedAt = 0;
      this.dispatchEvent(new Event('close'));
      this.scheduleRetry();
    });
  }

  heartbeat() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const sentAt = Date.now();
    ws.send(JSON.stringify({ type: 'ping' }));
    setTimeout(() => {
      if (this.ws === ws && this.lastMessageAt < sentAt) ws.close();
    }, PONG_DEADLINE_MS);
  }

  scheduleRetry() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const wait = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.nextRetryAt = Date.now() + wait;
    this.setState('closed');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }
}
