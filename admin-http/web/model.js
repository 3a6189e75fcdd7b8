// What the client knows, and how it keeps it current (docs/protocol.md sections 7, 8, 10, 13):
// the conversation list with unread counts, the profiles it shows, the position (highest seq
// seen) per conversation, the open conversation's messages, and the outbox of sends not yet
// acknowledged. Pushes are applied in seq order; a gap, a `SyncNeeded` or a reconnect runs the
// sync loop from the positions, so nothing committed while the socket was down is missed.
// The model raises 'list', 'chat' and 'status' events; view.js renders them.

import { ParleyError } from './conn.js';
import { base64ToText, num, randomHex, textToBase64 } from './wire.js';

const HISTORY_PAGE = 50;
const SYNC_PAGE = 200;

export const TEXT = 'CONTENT_TYPE_TEXT';
export const IMAGE = 'CONTENT_TYPE_IMAGE';
export const SYSTEM = 'CONTENT_TYPE_SYSTEM';

export class Model extends EventTarget {
  /** @param conn a Connection; @param files a Files; @param me {userId, account} */
  constructor(conn, files, me) {
    super();
    this.conn = conn;
    this.files = files;
    this.me = me;
    this.status = { state: 'connecting' };
    this.conversations = new Map();
    this.profiles = new Map();
    this.positions = new Map();
    this.epoch = '0';
    this.open = null;
    this.outbox = [];
    this.#fetchingProfiles = new Set();
  }

  #syncing = null;
  #syncAgain = false;
  #listTimer = null;
  #fetchingProfiles;

  // ---- connection events ----

  setStatus(status) {
    this.status = status;
    this.#emit('status');
  }

  /** Logged in (again): catch up, then refresh the list and the open conversation. */
  async ready(first) {
    try {
      if (first && this.positions.size === 0) await this.#baseline();
      else await this.sync();
      await this.refreshList();
      if (this.open) {
        if (first || !this.open.loaded) await this.#loadNewest(this.open);
        await this.#readState(this.open.id);
        this.markRead();
      }
      await this.#flushOutbox();
    } catch (e) {
      if (e.code !== 'DISCONNECTED') console.warn('parley: catching up failed', e);
    }
  }

  push(frame) {
    if (frame.message) this.#applyLive(frame.message.message);
    else if (frame.receipt) this.#receipt(frame.receipt);
    else if (frame.syncNeeded) this.sync().catch(() => {});
    else if (frame.profile) this.#profilePush(frame.profile);
  }

  // ---- sync ----

  // First login of this page: learn every conversation's head, so later syncs return only
  // what is new (history is loaded per conversation when it is opened).
  async #baseline() {
    const f = await this.conn.request('sync', { epoch: '0', limit: 1 });
    this.#adoptBaseline(f.syncResponse);
  }

  #adoptBaseline(r) {
    this.epoch = r.epoch || '0';
    this.positions.clear();
    for (const c of r.conversations || []) {
      this.positions.set(c.conversationId, num(c.headSeq));
      // Known but not listed until ListConversations says so (the notices never are).
      this.#mergeInfo(c).listed = false;
    }
  }

  /** Runs the sync loop from the positions until the server has nothing more. */
  sync() {
    if (this.#syncing) {
      this.#syncAgain = true;
      return this.#syncing;
    }
    this.#syncing = (async () => {
      try {
        do {
          this.#syncAgain = false;
          await this.#syncLoop();
        } while (this.#syncAgain);
      } finally {
        this.#syncing = null;
      }
    })();
    return this.#syncing;
  }

  async #syncLoop() {
    for (;;) {
      const positions = [...this.positions].map(([id, seq]) => ({
        conversationId: id,
        seq: String(seq),
      }));
      const f = await this.conn.request('sync', { epoch: this.epoch, positions, limit: SYNC_PAGE });
      const r = f.syncResponse;
      if (r.reset) {
        // The server's store is not the one our positions came from: start over.
        this.conversations.clear();
        this.#adoptBaseline(r);
        if (this.open) this.open = newOpen(this.open.id);
        await this.refreshList();
        if (this.open) await this.#loadNewest(this.open);
        return;
      }
      this.epoch = r.epoch || this.epoch;
      for (const m of r.messages || []) this.#apply(m, false);
      for (const c of r.conversations || []) this.#mergeInfo(c);
      for (const rc of r.receipts || []) this.#receipt(rc);
      this.#emit('list');
      if (!r.hasMore) return;
    }
  }

  // ---- the conversation list ----

  async refreshList() {
    const f = await this.conn.request('listConversations', {});
    const list = f.conversationList.conversations || [];
    const seen = new Set();
    for (const c of list) {
      this.#mergeInfo(c);
      seen.add(c.conversationId);
    }
    for (const c of this.conversations.values()) c.listed = seen.has(c.id);
    this.#needProfiles(list.flatMap((c) => c.memberUserIds || []));
    this.#emit('list');
  }

  #refreshListSoon() {
    clearTimeout(this.#listTimer);
    this.#listTimer = setTimeout(() => this.refreshList().catch(() => {}), 100);
  }

  #mergeInfo(c) {
    const id = c.conversationId;
    const old = this.conversations.get(id);
    const conv = old || { id, peerRead: 0, peerDelivered: 0, lastMessage: null, listed: true };
    conv.kind = c.kind || 'CONVERSATION_KIND_UNSPECIFIED';
    conv.name = c.name || '';
    conv.members = c.memberUserIds || conv.members || [];
    conv.head = Math.max(num(c.headSeq), conv.head || 0);
    conv.readSeq = Math.max(num(c.readSeq), conv.readSeq || 0);
    // The server's count, unless we have read further since it was taken.
    conv.unread = conv.readSeq >= conv.head ? 0 : num(c.unread);
    conv.pinned = !!c.pinned;
    conv.muted = !!c.muted;
    if (c.lastMessage) conv.lastMessage = c.lastMessage;
    if (!old) this.conversations.set(id, conv);
    if (!this.positions.has(id)) this.positions.set(id, conv.head);
    return conv;
  }

  /** The listed conversations: pinned first, then by latest activity (as the server orders). */
  listed() {
    return [...this.conversations.values()]
      .filter((c) => c.listed && c.kind !== 'CONVERSATION_KIND_NOTICES')
      .sort(
        (a, b) =>
          (b.pinned ? 1 : 0) - (a.pinned ? 1 : 0) ||
          lastTime(b) - lastTime(a) ||
          Number(b.id) - Number(a.id),
      );
  }

  /** What the list and the chat header call a conversation. */
  title(conv) {
    if (!conv) return '';
    if (conv.kind === 'CONVERSATION_KIND_GROUP') return conv.name || `group ${conv.id}`;
    const peer = (conv.members || []).find((u) => u !== this.me.userId);
    return peer ? this.userName(peer) : conv.name || `conversation ${conv.id}`;
  }

  userName(userId) {
    const p = this.profiles.get(userId);
    if (p) return p.nickname || p.account;
    this.#needProfiles([userId]);
    return `user ${userId}`;
  }

  #needProfiles(ids) {
    const want = [...new Set(ids)].filter(
      (id) => !this.profiles.has(id) && !this.#fetchingProfiles.has(id),
    );
    if (want.length === 0 || !this.conn.online) return;
    for (const id of want) this.#fetchingProfiles.add(id);
    this.conn
      .request('getProfiles', { userIds: want.slice(0, 100) })
      .then((f) => {
        for (const p of f.profileList.profiles || []) this.profiles.set(p.userId, p);
        this.#emit('list');
        this.#emit('chat');
      })
      .catch(() => {})
      .finally(() => want.forEach((id) => this.#fetchingProfiles.delete(id)));
  }

  #profilePush(p) {
    const profile = p.profile || p;
    if (profile.userId) {
      this.profiles.set(profile.userId, profile);
      this.#emit('list');
      this.#emit('chat');
    }
  }

  /** Opens (creating on first use) the 1:1 conversation with the user named `account`. */
  async startDirect(account) {
    const f = await this.conn.request('openDirect', { peerAccount: account });
    const conv = this.#mergeInfo(f.conversation);
    conv.listed = true;
    this.#needProfiles(conv.members);
    this.#emit('list');
    return conv.id;
  }

  // ---- entries ----

  #applyLive(m) {
    if (!m) return;
    const id = m.conversationId;
    const pos = this.positions.get(id);
    const seq = num(m.seq);
    if (pos !== undefined && seq > pos + 1) {
      // A gap: something was not pushed to us. Sync fetches it (and this one) in order.
      this.sync().catch(() => {});
      return;
    }
    this.#apply(m, true);
  }

  // `live`: from a push or our own ack (unread counts move here); else from sync (the
  // conversations in the response carry the counts).
  #apply(m, live) {
    const id = m.conversationId;
    const seq = num(m.seq);
    const pos = this.positions.get(id);
    if (pos !== undefined && seq <= pos) return;
    this.positions.set(id, seq);
    const conv = this.conversations.get(id);
    const mine = m.senderUserId === this.me.userId;
    if (mine && m.clientMsgId) this.#settle(m.clientMsgId);
    if (!conv) {
      this.#refreshListSoon();
    } else {
      conv.head = Math.max(conv.head, seq);
      if (!hiddenEvent(m)) conv.lastMessage = m;
      conv.listed = true;
      if (mine) conv.readSeq = Math.max(conv.readSeq, seq);
      else if (live && !this.#reading(id)) conv.unread += 1;
    }
    if (this.open && this.open.id === id) {
      this.#addToOpen(this.open, m);
      this.markRead();
    }
    this.#emit('list');
  }

  #addToOpen(open, m) {
    const ev = m.event || {};
    if (ev.edit || ev.recall) {
      const target = open.messages.get(num((ev.edit || ev.recall).seq));
      if (target && ev.edit) {
        target.content = ev.edit.content;
        target.editedAtMs = m.serverTimeMs;
      }
      if (target && ev.recall) {
        target.recalled = true;
        target.content = '';
      }
    } else if (!hiddenEvent(m)) {
      open.messages.set(num(m.seq), m);
    }
    this.#emit('chat');
  }

  #receipt(r) {
    const conv = this.conversations.get(r.conversationId);
    if (!conv) return;
    const seq = num(r.seq);
    const read = r.kind === 'CURSOR_KIND_READ';
    if (r.userId === this.me.userId) {
      // Our own cursor, moved on another device.
      if (read) {
        conv.readSeq = Math.max(conv.readSeq, seq);
        conv.unread = num(r.unread);
      }
      this.#emit('list');
      return;
    }
    if (read) conv.peerRead = Math.max(conv.peerRead, seq);
    conv.peerDelivered = Math.max(conv.peerDelivered, seq);
    if (this.open && this.open.id === conv.id) this.#emit('chat');
  }

  // ---- the open conversation ----

  #reading(id) {
    return this.open && this.open.id === id && document.visibilityState === 'visible';
  }

  async openConversation(id) {
    if (this.open && this.open.id === id) return;
    this.open = newOpen(id);
    this.#emit('chat');
    this.#emit('list');
    if (!this.conn.online) return; // loaded when the connection is back (ready)
    await this.#loadNewest(this.open);
    await this.#readState(id);
    this.markRead();
  }

  closeConversation() {
    this.open = null;
    this.#emit('chat');
    this.#emit('list');
  }

  async #loadNewest(open) {
    open.messages.clear();
    open.hasMore = true;
    await this.loadOlder(open);
    open.loaded = true;
  }

  /** Loads the page of history before the oldest message shown. */
  async loadOlder(open = this.open) {
    if (!open || open.loading || !open.hasMore) return;
    open.loading = true;
    try {
      const oldest = open.messages.size ? Math.min(...open.messages.keys()) : 0;
      const f = await this.conn.request('getHistory', {
        conversationId: open.id,
        beforeSeq: String(oldest),
        limit: HISTORY_PAGE,
      });
      if (this.open !== open) return;
      const page = f.history.messages || [];
      for (const m of page) open.messages.set(num(m.seq), m);
      open.hasMore = !!f.history.hasMore;
      if (oldest === 0 && page.length) {
        // The newest page: everything up to its top is seen.
        const top = Math.max(...page.map((m) => num(m.seq)));
        this.positions.set(open.id, Math.max(this.positions.get(open.id) || 0, top));
        const conv = this.conversations.get(open.id);
        if (conv) conv.head = Math.max(conv.head, top);
      }
      this.#needProfiles(page.map((m) => m.senderUserId));
    } finally {
      open.loading = false;
      this.#emit('chat');
    }
  }

  async #readState(id) {
    const f = await this.conn.request('getReadState', { conversationId: id });
    for (const r of f.readState.receipts || []) {
      this.#receipt({ kind: 'CURSOR_KIND_READ', ...r, conversationId: id });
    }
  }

  /** Moves the read cursor to what is shown, if the conversation is open and visible. */
  markRead() {
    const open = this.open;
    if (!open || !this.#reading(open.id) || !this.conn.online) return;
    const conv = this.conversations.get(open.id);
    const upTo = Math.max(this.positions.get(open.id) || 0, conv ? conv.head : 0);
    if (!conv || upTo <= conv.readSeq) {
      if (conv && conv.unread) {
        conv.unread = 0;
        this.#emit('list');
      }
      return;
    }
    const before = { readSeq: conv.readSeq, unread: conv.unread };
    conv.readSeq = upTo;
    conv.unread = 0;
    this.#emit('list');
    this.conn
      .request('cursorAck', { conversationId: open.id, kind: 'CURSOR_KIND_READ', seq: String(upTo) })
      .catch(() => {
        // Not moved: try again on the next occasion.
        if (conv.readSeq === upTo) Object.assign(conv, before);
      });
  }

  // ---- sending ----

  /** Messages of `id` not yet acknowledged (shown after the conversation's messages). */
  outboxOf(id) {
    return this.outbox.filter((e) => e.conversationId === id);
  }

  sendText(text) {
    if (!this.open) return;
    this.#enqueue({
      conversationId: this.open.id,
      contentType: TEXT,
      content: textToBase64(text),
      text,
    });
  }

  /** Uploads the image through the files API, then sends a message that names it. */
  async sendImage(file) {
    if (!this.open) return;
    const entry = this.#enqueue(
      { conversationId: this.open.id, contentType: IMAGE, content: null, localFile: file },
      false,
    );
    if (!file.type.startsWith('image/')) {
      this.#fail(entry, 'That file is not an image.');
      return;
    }
    entry.state = 'uploading';
    this.#emit('chat');
    try {
      const info = await this.files.upload(file);
      entry.content = textToBase64(
        JSON.stringify({
          file_id: info.file_id,
          name: info.name,
          mime_type: info.mime_type,
          size: info.size,
          width: info.width,
          height: info.height,
        }),
      );
      entry.state = 'sending';
      this.#emit('chat');
      await this.#send(entry);
    } catch (e) {
      this.#fail(entry, `Upload failed: ${e.message}`);
    }
  }

  /** Drops a failed entry from the outbox. */
  dismiss(entry) {
    this.outbox = this.outbox.filter((e) => e !== entry);
    this.#emit('chat');
  }

  #enqueue(fields, sendNow = true) {
    const entry = { clientMsgId: randomHex(16), state: 'sending', error: '', ...fields };
    this.outbox.push(entry);
    this.#emit('chat');
    if (sendNow) this.#send(entry);
    return entry;
  }

  async #send(entry) {
    if (!this.conn.online || entry.inFlight || entry.content === null) return;
    entry.inFlight = true;
    try {
      const f = await this.conn.request('send', {
        conversationId: entry.conversationId,
        contentType: entry.contentType,
        content: entry.content,
        clientMsgId: entry.clientMsgId,
      });
      const ack = f.sendAck;
      this.#applyLive({
        messageId: ack.messageId,
        conversationId: ack.conversationId,
        seq: ack.seq,
        senderUserId: this.me.userId,
        contentType: entry.contentType,
        content: entry.content,
        clientMsgId: entry.clientMsgId,
        serverTimeMs: ack.serverTimeMs,
      });
    } catch (e) {
      // A lost connection keeps it in the outbox: it is sent again (same client_msg_id, so
      // never twice) after the reconnect.
      if (e.code !== 'DISCONNECTED') this.#fail(entry, describe(e));
    } finally {
      entry.inFlight = false;
    }
  }

  async #flushOutbox() {
    for (const entry of [...this.outbox]) {
      if (entry.state === 'sending') await this.#send(entry);
    }
  }

  // Our own message is committed (acked, or seen in sync/push): it leaves the outbox.
  #settle(clientMsgId) {
    const before = this.outbox.length;
    this.outbox = this.outbox.filter((e) => e.clientMsgId !== clientMsgId);
    if (this.outbox.length !== before) this.#emit('chat');
  }

  #fail(entry, message) {
    entry.state = 'failed';
    entry.error = message;
    this.#emit('chat');
  }

  #emit(kind) {
    this.dispatchEvent(new Event(kind));
  }
}

function newOpen(id) {
  return { id, messages: new Map(), hasMore: true, loading: false, loaded: false };
}

function lastTime(conv) {
  return conv.lastMessage ? num(conv.lastMessage.serverTimeMs) : 0;
}

// Events that change other entries (or only the user's own notices) rather than being shown.
function hiddenEvent(m) {
  const ev = m.event;
  return !!(ev && (ev.edit || ev.recall || ev.reaction || ev.prefs || ev.deletedForMe));
}

/** A human sentence for a refused request. */
export function describe(e) {
  if (!(e instanceof ParleyError)) return String(e.message || e);
  switch (e.code) {
    case 'BLOCKED':
      return 'You cannot message this user.';
    case 'MESSAGE_TOO_LARGE':
      return 'The message is too long.';
    case 'RATE_LIMITED':
      return 'Too many requests; wait a moment.';
    case 'NOT_FRIENDS':
      return 'You need to be friends to chat.';
    default:
      return e.message || e.code;
  }
}

/** The text of a text message (for the list preview and the chat). */
export function textOf(m) {
  return base64ToText(m.content);
}
