// Rendering and user input for the signed-in screen: the connection status, the conversation
// list with unread badges, and the chat view. Everything a user or the server wrote goes into
// the page through textContent and attributes, never as HTML.

import { describe, IMAGE, SYSTEM, TEXT, textOf } from './model.js';
import { num } from './wire.js';

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function clock(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const sameDay = d.toDateString() === new Date().toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return sameDay ? time : `${d.toLocaleDateString()} ${time}`;
}

export class View {
  #model;
  #rows = new Map(); // key -> element of the chat view
  #shownId = null;
  #stick = true; // the chat is scrolled to its end: keep it there as messages arrive
  #statusTimer = null;
  #abort = new AbortController();

  constructor(model) {
    this.#model = model;
    const on = (target, type, fn) => target.addEventListener(type, fn, { signal: this.#abort.signal });
    on(model, 'list', () => this.renderList());
    on(model, 'chat', () => this.renderChat());
    on(model, 'status', () => this.renderStatus());
    on($('new-chat'), 'submit', (e) => this.#startChat(e));
    on($('composer'), 'submit', (e) => this.#sendText(e));
    on($('image-input'), 'change', (e) => this.#sendImage(e));
    on($('back'), 'click', () => this.#closeChat());
    on($('messages'), 'scroll', () => this.#scrolled());
    on(document, 'visibilitychange', () => {
      if (document.visibilityState === 'visible') model.markRead();
    });
    $('me-name').textContent = model.me.account;
    this.renderStatus();
    this.renderList();
    this.renderChat();
  }

  /** Stops listening (the session ended). */
  detach() {
    this.#abort.abort();
    clearInterval(this.#statusTimer);
    $('conversations').replaceChildren();
    $('messages').replaceChildren();
  }

  // ---- status ----

  renderStatus() {
    const s = this.#model.status;
    const node = $('status');
    node.dataset.state = s.state;
    clearInterval(this.#statusTimer);
    const paint = () => {
      let text = { online: 'online', connecting: 'connecting…' }[s.state];
      if (s.state === 'stopped') text = s.detail ? `disconnected: ${s.detail}` : 'disconnected';
      if (s.state === 'offline') {
        const secs = Math.max(0, Math.ceil(((s.retryAt || 0) - Date.now()) / 1000));
        text = s.detail ? `offline (${s.detail})` : 'offline';
        text += secs > 0 ? `, reconnecting in ${secs} s` : ', reconnecting…';
      }
      node.textContent = text || s.state;
    };
    paint();
    if (s.state === 'offline') this.#statusTimer = setInterval(paint, 1000);
  }

  // ---- the conversation list ----

  renderList() {
    const m = this.#model;
    const items = m.listed().map((conv) => {
      const li = el('li');
      const button = el('button', 'conv');
      button.type = 'button';
      button.dataset.id = conv.id;
      if (m.open && m.open.id === conv.id) button.classList.add('active');
      button.append(el('span', 'title', m.title(conv)));
      if (conv.unread > 0) {
        const badge = el('span', 'badge', String(conv.unread));
        badge.title = `${conv.unread} unread`;
        button.append(badge);
      }
      button.append(el('span', 'preview', this.#preview(conv.lastMessage)));
      button.addEventListener('click', () => this.#openChat(conv.id));
      li.append(button);
      return li;
    });
    if (items.length === 0) items.push(el('li', 'hint', 'No conversations yet.'));
    $('conversations').replaceChildren(...items);
    document.title = this.#title();
  }

  #title() {
    const unread = this.#model.listed().reduce((n, c) => n + (c.muted ? 0 : c.unread), 0);
    return unread > 0 ? `(${unread}) Parley` : 'Parley';
  }

  #preview(m) {
    if (!m) return '';
    const who = m.senderUserId === this.#model.me.userId ? 'You: ' : '';
    if (m.recalled) return `${who}(recalled)`;
    switch (m.contentType) {
      case TEXT:
        return who + textOf(m).slice(0, 80);
      case IMAGE:
        return `${who}[image]`;
      case SYSTEM:
        return systemText(m, this.#model);
      default:
        return `${who}[message]`;
    }
  }

  // ---- the chat view ----

  renderChat() {
    const m = this.#model;
    const open = m.open;
    $('main').classList.toggle('chat-open', !!open);
    $('chat').classList.toggle('empty', !open);
    const list = $('messages');
    if (!open) {
      this.#shownId = null;
      this.#rows.clear();
      list.replaceChildren();
      $('chat-title').textContent = '';
      return;
    }
    if (this.#shownId !== open.id) {
      this.#shownId = open.id;
      this.#rows.clear();
      list.replaceChildren();
      this.#stick = true;
    }
    const conv = m.conversations.get(open.id);
    $('chat-title').textContent = m.title(conv) || '…';
    const firstBefore = list.firstElementChild;
    const fromBottom = list.scrollHeight - list.scrollTop;

    const wanted = [];
    if (open.hasMore && open.loaded) {
      wanted.push(
        this.#row('more', () => {
          const more = el('button', 'more', 'older messages');
          more.type = 'button';
          more.addEventListener('click', () => this.#model.loadOlder().catch(() => {}));
          return more;
        }),
      );
    }
    if (open.loading && !open.loaded) wanted.push(this.#row('loading', () => el('div', 'more', 'loading…')));
    const seqs = [...open.messages.keys()].sort((a, b) => a - b);
    for (const seq of seqs) wanted.push(this.#message(open.messages.get(seq), conv));
    for (const entry of m.outboxOf(open.id)) wanted.push(this.#pending(entry));
    const keep = new Set(wanted);
    for (const [key, node] of this.#rows) {
      if (!keep.has(node)) this.#rows.delete(key);
    }
    list.replaceChildren(...wanted);

    if (this.#stick) list.scrollTop = list.scrollHeight;
    else if (firstBefore && list.firstElementChild !== firstBefore) {
      // Older messages went in above: keep what the user was looking at in place.
      list.scrollTop = list.scrollHeight - fromBottom;
    }
  }

  #row(key, make) {
    let node = this.#rows.get(key);
    if (!node) {
      node = make();
      this.#rows.set(key, node);
    }
    return node;
  }

  #message(msg, conv) {
    const m = this.#model;
    const seq = num(msg.seq);
    const mine = msg.senderUserId === m.me.userId;
    const version = `${msg.content || ''}|${msg.recalled ? 1 : 0}|${msg.editedAtMs || 0}`;
    let node = this.#rows.get(`s${seq}`);
    if (!node || node.dataset.version !== version) {
      node = msg.contentType === SYSTEM ? el('div', 'note', systemText(msg, m)) : this.#bubble(msg, mine, conv);
      node.dataset.seq = String(seq);
      node.dataset.version = version;
      this.#rows.set(`s${seq}`, node);
    }
    if (mine && msg.contentType !== SYSTEM) {
      const state = conv && conv.peerRead >= seq ? 'read' : conv && conv.peerDelivered >= seq ? 'delivered' : 'sent';
      const stateEl = node.querySelector('.state');
      stateEl.textContent = state;
      stateEl.dataset.state = state;
    }
    return node;
  }

  #bubble(msg, mine, conv) {
    const node = el('div', `msg ${mine ? 'mine' : 'theirs'}`);
    const bubble = el('div', 'bubble');
    if (!mine && conv && conv.kind === 'CONVERSATION_KIND_GROUP') {
      bubble.append(el('div', 'sender', this.#model.userName(msg.senderUserId)));
    }
    if (msg.recalled) {
      bubble.append(el('div', 'recalled', 'message recalled'));
    } else if (msg.contentType === TEXT) {
      bubble.append(el('div', 'text', textOf(msg)));
    } else if (msg.contentType === IMAGE) {
      bubble.append(this.#image(msg));
    } else {
      bubble.append(el('div', 'unsupported', 'a message this client cannot show'));
    }
    const meta = el('div', 'meta');
    meta.append(el('time', '', clock(num(msg.serverTimeMs))));
    if (msg.editedAtMs) meta.append(el('span', 'edited', 'edited'));
    if (mine) meta.append(el('span', 'state'));
    node.append(bubble, meta);
    return node;
  }

  #image(msg) {
    let info = {};
    try {
      info = JSON.parse(textOf(msg));
    } catch {
      // not the JSON an image message should carry
    }
    const img = el('img', 'image');
    img.alt = typeof info.name === 'string' ? info.name : 'image';
    sizeImage(img, info.width, info.height);
    img.addEventListener('load', () => this.#keepAtEnd());
    if (typeof info.file_id !== 'string') {
      return el('div', 'unsupported', 'an image without a file');
    }
    this.#model.files
      .imageUrl(info.file_id)
      .then((url) => {
        img.src = url;
      })
      .catch((e) => {
        img.replaceWith(el('div', 'error', `image unavailable: ${e.message}`));
      });
    img.addEventListener('click', () => {
      this.#model.files.fullUrl(info.file_id).then((url) => window.open(url, '_blank', 'noopener'));
    });
    return img;
  }

  #pending(entry) {
    const key = `p${entry.clientMsgId}`;
    const node = this.#row(key, () => {
      const n = el('div', 'msg mine pending');
      const bubble = el('div', 'bubble');
      if (entry.contentType === TEXT) {
        bubble.append(el('div', 'text', entry.text));
      } else {
        const img = el('img', 'image');
        img.alt = entry.localFile ? entry.localFile.name : 'image';
        if (entry.localFile) {
          entry.previewUrl = entry.previewUrl || URL.createObjectURL(entry.localFile);
          img.src = entry.previewUrl;
        }
        bubble.append(img);
      }
      const meta = el('div', 'meta');
      meta.append(el('span', 'state'));
      n.append(bubble, meta);
      return n;
    });
    const stateEl = node.querySelector('.state');
    stateEl.dataset.state = entry.state;
    if (entry.state === 'failed') {
      stateEl.textContent = `not sent: ${entry.error}`;
      stateEl.classList.add('error');
      if (!node.querySelector('.dismiss')) {
        const x = el('button', 'dismiss', 'dismiss');
        x.type = 'button';
        x.addEventListener('click', () => this.#model.dismiss(entry));
        node.querySelector('.meta').append(x);
      }
    } else {
      stateEl.textContent = entry.state === 'uploading' ? 'uploading…' : 'sending…';
    }
    return node;
  }

  #scrolled() {
    const list = $('messages');
    this.#stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    if (list.scrollTop < 80 && this.#model.open && this.#model.open.loaded) {
      this.#model.loadOlder().catch(() => {});
    }
  }

  #keepAtEnd() {
    if (this.#stick) {
      const list = $('messages');
      list.scrollTop = list.scrollHeight;
    }
  }

  // ---- input ----

  #openChat(id) {
    history.replaceState(null, '', `#c=${encodeURIComponent(id)}`);
    this.#model.openConversation(id).catch((e) => this.#chatError(e));
    $('text').focus();
  }

  #closeChat() {
    history.replaceState(null, '', location.pathname);
    this.#model.closeConversation();
  }

  #chatError(e) {
    if (e.code === 'NOT_FOUND') this.#closeChat();
    $('new-chat-error').textContent = describe(e);
  }

  async #startChat(e) {
    e.preventDefault();
    const input = $('new-chat-account');
    const account = input.value.trim();
    const error = $('new-chat-error');
    error.textContent = '';
    if (!account) return;
    try {
      const id = await this.#model.startDirect(account);
      input.value = '';
      this.#openChat(id);
    } catch (err) {
      error.textContent = err.code === 'NOT_FOUND' ? `There is no user “${account}”.` : describe(err);
    }
  }

  #sendText(e) {
    e.preventDefault();
    const input = $('text');
    const text = input.value;
    if (!text.trim() || !this.#model.open) return;
    input.value = '';
    this.#stick = true;
    this.#model.sendText(text);
  }

  #sendImage(e) {
    const file = e.target.files && e.target.files[0];
    e.target.value = '';
    if (!file || !this.#model.open) return;
    this.#stick = true;
    this.#model.sendImage(file);
  }
}

function sizeImage(img, w, h) {
  const width = num(w);
  const height = num(h);
  if (!(width > 0 && height > 0)) return;
  const scale = Math.min(1, 240 / Math.max(width, height));
  img.width = Math.max(1, Math.round(width * scale));
  img.height = Math.max(1, Math.round(height * scale));
}

function systemText(m, model) {
  const ev = m.event || {};
  const who = model.userName(m.senderUserId);
  if (ev.membership) return `${who} changed the members`;
  if (ev.groupProfile) return `${who} changed the group`;
  if (ev.call) return 'a call ended';
  if (ev.disband) return `${who} disbanded the group`;
  return `${who} changed something`;
}
