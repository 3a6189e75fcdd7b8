// The session: one WebSocket to `/ws?encoding=json` carrying the binary protocol's frames in
// their proto3 JSON form (docs/websocket.md, docs/protocol.md). This module logs in (register,
// password, then the access token, refreshing it when it expires), matches answers to
// requests by `requestId`, hands pushes to the app, sends pings when idle, declares the
// connection dead after the heartbeat timeout, and reconnects with jittered exponential backoff
// (protocol.md section 12) until the server says not to (`GoAway` LOGGED_OUT or REPLACED).

import { num, shortCode } from './wire.js';

const DEFAULT_INTERVAL_MS = 30000;
const DEFAULT_TIMEOUT_MS = 90000;
const BACKOFF_MAX_MS = 30000;
// Refresh the access token this long before it expires.
const REFRESH_MARGIN_MS = 60000;

/** A refused request: `code` is the protocol's error code without its prefix. */
export class ParleyError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

// Errors of the connection itself rather than of a request.
const DISCONNECTED = 'DISCONNECTED';
const UNREACHABLE = 'UNREACHABLE';

/**
 * The connection, with callbacks:
 * - `onStatus({state, retryAt, detail})`: `connecting`, `online`, `offline`, `stopped`;
 * - `onReady(loginResult, first)`: logged in (again); `first` on the first login of this page;
 * - `onPush(frame)`: a frame that answers no request;
 * - `onTokens(auth)`: tokens changed (persist them);
 * - `onEnded(message, replaced)`: the server ended the session (signed out, tokens refused;
 *   or `replaced`: another tab of this browser, the same device, took the session over);
 * - `storedTokens()`: the newest tokens in storage (another tab may have renewed them).
 */
export class Connection {
  #url;
  #device;
  #on;
  #ws = null;
  #nextId = 1;
  #pending = new Map();
  #attempt = 0;
  #retryTimer = null;
  #beatTimer = null;
  #refreshTimer = null;
  #stopped = true;
  #credential = null;
  #firstLogin = null;
  #lastIn = 0;
  #lastOut = 0;
  #interval = DEFAULT_INTERVAL_MS;
  #timeout = DEFAULT_TIMEOUT_MS;
  #goAway = null;
  #clockSkew = 0;
  #readyOnce = false;
  /** {userId, account, accessToken, accessExpiresAtMs, refreshToken, refreshExpiresAtMs} */
  auth = null;
  online = false;

  constructor(url, device, on) {
    this.#url = url;
    this.#device = device;
    this.#on = on;
    window.addEventListener('online', () => this.#networkBack());
    window.addEventListener('offline', () => this.#networkGone());
  }

  /**
   * Starts the session with `credential`: `{register: {account, password}}`,
   * `{password: {account, password}}` or `{token: auth}` (from storage). For the first two the
   * promise settles with the first login (rejecting with a ParleyError if it is refused or the
   * server cannot be reached); with a token it resolves at once and the connection keeps trying.
   */
  start(credential) {
    this.#stopped = false;
    this.#attempt = 0;
    this.#readyOnce = false;
    this.#goAway = null;
    if (credential.token) {
      this.auth = credential.token;
      this.#credential = { token: true };
      this.#connect();
      return Promise.resolve();
    }
    this.#credential = credential;
    return new Promise((resolve, reject) => {
      this.#firstLogin = { resolve, reject };
      this.#connect();
    });
  }

  /** Closes the connection and stops reconnecting. */
  stop() {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#refreshTimer);
    const ws = this.#ws;
    this.#closed(ws, null);
    if (ws) ws.close(1000, 'bye');
    this.#status('stopped');
  }

  /** Sends a request (`kind` is the `Frame` body field) and resolves with its answer frame. */
  request(kind, body) {
    if (!this.online) {
      return Promise.reject(new ParleyError(DISCONNECTED, 'not connected'));
    }
    return this.#call(this.#ws, kind, body);
  }

  /** Renews the token pair now (e.g. after a `401` from the files API). */
  async refreshTokens() {
    const stored = this.#on.storedTokens();
    if (
      stored &&
      stored.userId === this.auth.userId &&
      stored.accessToken !== this.auth.accessToken &&
      num(stored.accessExpiresAtMs) - this.#now() > REFRESH_MARGIN_MS
    ) {
      // Another tab of this browser renewed them already.
      this.#adopt(stored);
      return;
    }
    const answer = await this.request('refresh', {
      refreshToken: this.auth.refreshToken,
      device: this.#deviceInfo(),
    });
    this.#adopt(answer.loginResult);
  }

  /** Logs out: the server revokes this device's tokens and closes the connection. */
  async logout() {
    try {
      await this.request('logout', {});
    } finally {
      this.stop();
    }
  }

  // ---- the socket ----

  #connect() {
    clearTimeout(this.#retryTimer);
    if (this.#stopped) return;
    this.#status('connecting');
    this.#goAway = null;
    let ws;
    try {
      ws = new WebSocket(this.#url);
    } catch (e) {
      if (this.#firstLogin) {
        this.#failFirst(new ParleyError(UNREACHABLE, `Cannot open the connection: ${e.message}`));
        this.#stopped = true;
        this.#status('stopped');
      } else {
        this.#retry();
      }
      return;
    }
    this.#ws = ws;
    ws.onopen = () => {
      this.#lastIn = this.#lastOut = Date.now();
      this.#login(ws);
    };
    ws.onmessage = (ev) => this.#message(ws, ev);
    ws.onclose = () => this.#closed(ws, 'closed');
    ws.onerror = () => {}; // onclose follows and says the rest
  }

  #message(ws, ev) {
    if (ws !== this.#ws) return;
    this.#lastIn = Date.now();
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      console.warn('parley: an undecodable frame from the server');
      return;
    }
    const id = frame.requestId;
    if (id && this.#pending.has(id)) {
      const { resolve, reject } = this.#pending.get(id);
      this.#pending.delete(id);
      if (frame.error) reject(new ParleyError(shortCode(frame.error.code), frame.error.message));
      else resolve(frame);
      return;
    }
    if (frame.goAway) this.#goAway = frame.goAway.reason || 'GO_AWAY_REASON_UNSPECIFIED';
    if (frame.error) {
      console.warn('parley: server error', frame.error);
      return;
    }
    if (this.online) this.#on.onPush(frame);
  }

  #call(ws, kind, body) {
    const id = String(this.#nextId++);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      try {
        ws.send(JSON.stringify({ requestId: id, [kind]: body }));
        this.#lastOut = Date.now();
      } catch (e) {
        this.#pending.delete(id);
        reject(new ParleyError(DISCONNECTED, 'connection lost'));
      }
    });
  }

  // `why` is null when we closed it ourselves on purpose.
  #closed(ws, why) {
    if (!ws || ws !== this.#ws) return;
    this.#ws = null;
    this.online = false;
    clearInterval(this.#beatTimer);
    clearTimeout(this.#refreshTimer);
    for (const { reject } of this.#pending.values()) {
      reject(new ParleyError(DISCONNECTED, 'connection lost'));
    }
    this.#pending.clear();
    if (why === null || this.#stopped) return;
    const reason = this.#goAway;
    if (reason === 'GO_AWAY_REASON_LOGGED_OUT') {
      this.#end('You were signed out. Log in again.');
      return;
    }
    if (reason === 'GO_AWAY_REASON_REPLACED') {
      this.#end('Opened in another tab or window of this browser.', true);
      return;
    }
    if (this.#firstLogin) {
      this.#failFirst(new ParleyError(UNREACHABLE, 'Cannot reach the server.'));
      this.#stopped = true;
      this.#status('stopped');
      return;
    }
    this.#retry();
  }

  #retry() {
    if (this.#stopped) return;
    const d = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 16);
    const delay = d / 2 + Math.random() * (d / 2);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
    this.#status('offline', {
      retryAt: Date.now() + delay,
      detail: navigator.onLine === false ? 'no network' : '',
    });
  }

  #networkBack() {
    if (this.#stopped || this.#ws) return;
    this.#attempt = 0;
    this.#connect();
  }

  #networkGone() {
    // The browser says the network is gone: the socket cannot deliver anything, and may not
    // notice for a long time. Drop it now and wait for the network (or the backoff).
    if (this.#stopped || !this.#ws) return;
    const ws = this.#ws;
    this.#closed(ws, 'offline');
    ws.close(1000, 'offline');
  }

  #end(message, replaced = false) {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#status('stopped', { detail: message });
    this.#on.onEnded(message, replaced);
  }

  #failFirst(error) {
    if (!this.#firstLogin) return;
    const { reject } = this.#firstLogin;
    this.#firstLogin = null;
    reject(error);
  }

  #status(state, extra = {}) {
    this.#on.onStatus({ state, ...extra });
  }

  // ---- login and tokens ----

  #deviceInfo() {
    return { deviceId: this.#device, platform: 'PLATFORM_WEB' };
  }

  #now() {
    return Date.now() + this.#clockSkew;
  }

  async #login(ws) {
    const device = this.#deviceInfo();
    const c = this.#credential;
    try {
      let answer;
      if (c.register) {
        answer = await this.#call(ws, 'register', { ...c.register, device });
      } else if (c.password) {
        answer = await this.#call(ws, 'login', { password: c.password, device });
      } else {
        answer = await this.#tokenLogin(ws, device);
      }
      this.#loggedIn(ws, answer.loginResult);
    } catch (e) {
      if (ws !== this.#ws) return;
      if (e.code === DISCONNECTED) return; // #closed handles it
      if (this.#firstLogin) {
        // The form's credentials were refused: the form says why.
        this.#failFirst(e);
        this.#stopped = true;
        this.#closed(ws, null);
        ws.close(1000, 'login refused');
        this.#status('stopped');
        return;
      }
      const refused = ['AUTH_FAILED', 'TOKEN_EXPIRED', 'BANNED', 'INVALID_ARGUMENT'];
      if (refused.includes(e.code)) {
        this.#closed(ws, null);
        ws.close(1000, 'login refused');
        this.#end(sessionEndedMessage(e));
        return;
      }
      // RATE_LIMITED, SHUTTING_DOWN, INTERNAL...: try again later.
      this.#closed(ws, 'login failed');
      ws.close(1000, 'retry');
    }
  }

  async #tokenLogin(ws, device) {
    // Tabs of one browser share the device and its tokens: use the newest pair.
    const stored = this.#on.storedTokens();
    if (stored && stored.userId === this.auth.userId) this.auth = stored;
    const a = this.auth;
    const accessValid = a.accessToken && num(a.accessExpiresAtMs) - this.#now() > 5000;
    if (accessValid) {
      try {
        return await this.#call(ws, 'login', { accessToken: a.accessToken, device });
      } catch (e) {
        if (e.code !== 'TOKEN_EXPIRED') throw e;
      }
    }
    if (!a.refreshToken) throw new ParleyError('TOKEN_EXPIRED', 'the session expired');
    return this.#call(ws, 'refresh', { refreshToken: a.refreshToken, device });
  }

  #loggedIn(ws, result) {
    if (ws !== this.#ws) return;
    this.#clockSkew = num(result.serverTimeMs) - Date.now();
    this.#adopt(result);
    this.#interval = num(result.heartbeatIntervalMs) || DEFAULT_INTERVAL_MS;
    this.#timeout = num(result.heartbeatTimeoutMs) || DEFAULT_TIMEOUT_MS;
    this.#credential = { token: true };
    this.#attempt = 0;
    this.online = true;
    clearInterval(this.#beatTimer);
    this.#beatTimer = setInterval(() => this.#beat(ws), 1000);
    this.#status('online');
    const first = !this.#readyOnce;
    this.#readyOnce = true;
    if (this.#firstLogin) {
      const { resolve } = this.#firstLogin;
      this.#firstLogin = null;
      resolve(result);
    }
    this.#on.onReady(result, first);
  }

  #adopt(result) {
    const old = this.auth || {};
    this.auth = {
      userId: result.userId,
      account: result.account,
      accessToken: result.accessToken || old.accessToken,
      accessExpiresAtMs: num(result.accessExpiresAtMs) || num(old.accessExpiresAtMs),
      // A token login issues no new refresh token: keep ours.
      refreshToken: result.refreshToken || old.refreshToken,
      refreshExpiresAtMs: num(result.refreshExpiresAtMs) || num(old.refreshExpiresAtMs),
    };
    this.#on.onTokens(this.auth);
    clearTimeout(this.#refreshTimer);
    const inMs = this.auth.accessExpiresAtMs - this.#now() - REFRESH_MARGIN_MS;
    this.#refreshTimer = setTimeout(
      () => this.refreshTokens().catch((e) => console.warn('parley: token refresh failed', e)),
      Math.min(Math.max(inMs, 5000), 2 ** 31 - 1),
    );
  }

  // Once a second: ping when we have been quiet for an interval; drop a connection that has
  // been silent for the timeout (every ping is answered, so a live one never is).
  #beat(ws) {
    if (ws !== this.#ws) return;
    const now = Date.now();
    if (now - this.#lastIn > this.#timeout) {
      this.#closed(ws, 'dead');
      ws.close(1000, 'no heartbeat');
      return;
    }
    if (now - this.#lastOut >= this.#interval) {
      this.#call(ws, 'ping', { clientTimeMs: String(now) }).catch(() => {});
    }
  }
}

function sessionEndedMessage(e) {
  switch (e.code) {
    case 'AUTH_FAILED':
    case 'TOKEN_EXPIRED':
      return 'Your session has expired. Log in again.';
    case 'BANNED':
      return 'This account is banned.';
    default:
      return e.message;
  }
}
