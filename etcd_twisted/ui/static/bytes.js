// Keys and values are bytes: base64 on the wire, UTF-8 text when printable, hex otherwise.

const encoder = new TextEncoder();
const strict = new TextDecoder('utf-8', { fatal: true });
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** Text to its UTF-8 bytes. */
export function utf8(text) {
  return encoder.encode(text);
}

/** Bytes to padded standard base64, as the gateway reads `bytes` fields. */
export function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** A base64 field of a gateway response (absent when empty) to bytes. */
export function fromBase64(text) {
  if (!text) return new Uint8Array();
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The UTF-8 text of `bytes` if it is valid and has no control characters, else null. */
export function printable(bytes) {
  try {
    const text = strict.decode(bytes);
    return CONTROL.test(text) ? null : text;
  } catch {
    return null;
  }
}

/** How to show `bytes`: its text, or `0x` and its hex. */
export function show(bytes) {
  const text = printable(bytes);
  return text === null ? '0x' + toHex(bytes) : text;
}

/** The range end that makes `prefix` a prefix range (`\0`, every key, for an empty one). */
export function prefixEnd(prefix) {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i] += 1;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}

/** The key range of `prefix` as gateway fields. */
export function prefixRange(prefix) {
  const key = prefix.length ? prefix : new Uint8Array([0]);
  return { key: toBase64(key), range_end: toBase64(prefixEnd(prefix)) };
}

/** A size in bytes for people. */
export function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(n) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return (unit ? value.toFixed(1) : String(value)) + ' ' + units[unit];
}
