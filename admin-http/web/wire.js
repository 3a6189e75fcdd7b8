// Small helpers for the proto3 JSON mapping the WebSocket speaks (docs/websocket.md):
// `bytes` fields are standard base64, 64-bit numbers are decimal strings, and fields with
// their default value are left out.

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

/** UTF-8 text -> base64 (a `bytes` field). */
export function textToBase64(text) {
  return bytesToBase64(encoder.encode(text));
}

/** base64 (a `bytes` field) -> UTF-8 text; invalid sequences become U+FFFD. */
export function base64ToText(b64) {
  return decoder.decode(base64ToBytes(b64 || ''));
}

export function bytesToBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function base64ToBytes(b64) {
  const binary = atob(b64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** A `uint64` field as a number (absent = 0). Seqs and times stay far below 2^53. */
export function num(v) {
  return v === undefined || v === null ? 0 : Number(v);
}

/** A fresh random id (hex): client message ids, device ids. Works outside secure contexts. */
export function randomHex(bytes = 16) {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** `ERROR_CODE_NOT_FOUND` -> `NOT_FOUND`. */
export function shortCode(code) {
  return String(code || 'ERROR_CODE_UNSPECIFIED').replace(/^ERROR_CODE_/, '');
}
