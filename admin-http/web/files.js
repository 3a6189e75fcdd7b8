// Image bytes go through the files API (docs/files.md), not the WebSocket: uploads are a raw
// `POST /im/v1/files?name=` with the bearer token, downloads a `GET /im/v1/files/{id}` (or its
// thumbnail) with the token, shown through a `blob:` URL since an <img> cannot send headers.
// A `401` renews the token pair over the session once and tries again.

export class Files {
  #conn;
  #urls = new Map();

  constructor(conn) {
    this.#conn = conn;
  }

  /** Uploads `file` and resolves with its record (`file_id`, `width`, `height`, ...). */
  async upload(file) {
    const name = encodeURIComponent(file.name || 'image');
    const response = await this.#fetch(`/im/v1/files?name=${name}`, {
      method: 'POST',
      headers: { 'Content-Type': file.type || 'application/octet-stream' },
      body: file,
    });
    return response.json();
  }

  /**
   * A `blob:` URL for the file's thumbnail (or the file itself when it has none), fetched once
   * per page.
   */
  imageUrl(fileId) {
    if (!/^[0-9a-f]{1,64}$/i.test(fileId)) return Promise.reject(new Error('not a file of this server'));
    let url = this.#urls.get(fileId);
    if (!url) {
      url = this.#download(fileId);
      this.#urls.set(fileId, url);
      url.catch(() => this.#urls.delete(fileId));
    }
    return url;
  }

  /** A `blob:` URL for the whole file. */
  async fullUrl(fileId) {
    const response = await this.#fetch(`/im/v1/files/${encodeURIComponent(fileId)}`, {});
    return URL.createObjectURL(await response.blob());
  }

  async #download(fileId) {
    const base = `/im/v1/files/${encodeURIComponent(fileId)}`;
    let response;
    try {
      response = await this.#fetch(`${base}/thumbnail`, {});
    } catch {
      response = await this.#fetch(base, {});
    }
    return URL.createObjectURL(await response.blob());
  }

  // fetch with the bearer token; a non-2xx answer throws with the server's message.
  async #fetch(path, init, retried = false) {
    const auth = this.#conn.auth;
    const headers = { ...(init.headers || {}), Authorization: `Bearer ${auth ? auth.accessToken : ''}` };
    const response = await fetch(path, { ...init, headers, cache: 'default' });
    if (response.ok) return response;
    if (response.status === 401 && !retried && this.#conn.online && !(init.body instanceof ReadableStream)) {
      await this.#conn.refreshTokens();
      return this.#fetch(path, init, true);
    }
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(message);
  }
}
