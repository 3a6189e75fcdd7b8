// Parley's browser client: the entry module. It owns the page's one connection, the login
// form, and the session's lifetime; model.js keeps the data, view.js draws it.
// See docs/web-client.md.
//
// Stored in localStorage: this browser's device id (kept for good, so the server sees one
// device) and the session's tokens (so a reload stays signed in; removed on logout).

import { Connection } from './conn.js';
import { Files } from './files.js';
import { Model } from './model.js';
import { View } from './view.js';
import { num, randomHex } from './wire.js';

const AUTH_KEY = 'parley.auth';
const DEVICE_KEY = 'parley.device';
const ACCOUNT = /^[A-Za-z0-9_.-]{3,64}$/;

const $ = (id) => document.getElementById(id);

let model = null;
let view = null;
let status = { state: 'connecting' };

const conn = new Connection(socketUrl(), deviceId(), {
  onStatus(s) {
    status = s;
    if (model) model.setStatus(s);
  },
  onReady(result, first) {
    if (!model) begin({ userId: result.userId, account: result.account });
    model.ready(first);
  },
  onPush(frame) {
    if (model) model.push(frame);
  },
  onTokens(auth) {
    localStorage.setItem(AUTH_KEY, JSON.stringify(auth));
  },
  onEnded(message, replaced) {
    if (replaced && model) {
      // Another tab has the session now: keep the tokens (they are its too) and offer to take
      // the session back here.
      $('take-over').hidden = false;
      return;
    }
    finish();
    showLogin(message);
  },
  storedTokens() {
    return savedAuth();
  },
});
const files = new Files(conn);

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws?encoding=json`;
}

function deviceId() {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = `web-${randomHex(8)}`;
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

function savedAuth() {
  try {
    const auth = JSON.parse(localStorage.getItem(AUTH_KEY) || 'null');
    if (auth && auth.userId && auth.refreshToken && num(auth.refreshExpiresAtMs) > Date.now()) {
      return auth;
    }
  } catch {
    // unreadable: log in again
  }
  localStorage.removeItem(AUTH_KEY);
  return null;
}

// ---- the session ----

/** Shows the signed-in screen for `me`. */
function begin(me) {
  $('take-over').hidden = true;
  model = new Model(conn, files, me);
  model.setStatus(status);
  view = new View(model);
  $('login').hidden = true;
  $('main').hidden = false;
  const wanted = /^#c=(\d+)$/.exec(location.hash);
  if (wanted) model.openConversation(wanted[1]).catch(() => history.replaceState(null, '', location.pathname));
}

/** Leaves the signed-in screen and forgets the session. */
function finish() {
  localStorage.removeItem(AUTH_KEY);
  if (view) view.detach();
  view = null;
  model = null;
  history.replaceState(null, '', location.pathname);
}

function showLogin(message) {
  $('main').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('login-password').value = '';
  setBusy(false);
  $('login-account').focus();
}

function setBusy(busy) {
  $('login-button').disabled = busy;
  $('register-button').disabled = busy;
}

async function submitLogin(register) {
  const account = $('login-account').value.trim();
  const password = $('login-password').value;
  const error = $('login-error');
  error.textContent = '';
  if (!ACCOUNT.test(account)) {
    error.textContent = 'A username is 3 to 64 letters, digits, dots, dashes or underscores.';
    return;
  }
  if (register && password.length < 8) {
    error.textContent = 'Choose a password of at least 8 characters.';
    return;
  }
  if (!password) {
    error.textContent = 'Enter your password.';
    return;
  }
  setBusy(true);
  try {
    const credential = { account, password };
    await conn.start(register ? { register: credential } : { password: credential });
    $('login-password').value = '';
  } catch (e) {
    error.textContent = loginError(e, register);
  } finally {
    setBusy(false);
  }
}

function loginError(e, register) {
  switch (e.code) {
    case 'AUTH_FAILED':
      return 'Wrong username or password.';
    case 'CONFLICT':
      return register ? 'That username is taken.' : e.message;
    case 'BANNED':
      return 'This account is banned.';
    case 'RATE_LIMITED':
      return 'Too many attempts; wait a moment and try again.';
    case 'UNREACHABLE':
      return 'Cannot reach the server. Check the connection and try again.';
    default:
      return e.message || 'Something went wrong.';
  }
}

async function logout() {
  const auth = conn.auth;
  if (conn.online) {
    await conn.logout().catch(() => {});
  } else {
    conn.stop();
    if (auth) {
      // The session is down: revoke the tokens over REST so they do not outlive the logout.
      fetch('/im/v1/auth/logout', {
        method: 'POST',
        headers: { Authorization: `Bearer ${auth.accessToken}` },
      }).catch(() => {});
    }
  }
  finish();
  showLogin('');
}

// ---- wiring ----

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  submitLogin(false);
});
$('register-button').addEventListener('click', () => submitLogin(true));
$('logout').addEventListener('click', () => logout());
$('take-over').addEventListener('click', () => {
  $('take-over').hidden = true;
  const auth = savedAuth();
  if (auth) conn.start({ token: auth });
  else {
    finish();
    showLogin('Log in again.');
  }
});

const saved = savedAuth();
if (saved) {
  begin({ userId: saved.userId, account: saved.account });
  conn.start({ token: saved });
} else {
  showLogin('');
}
