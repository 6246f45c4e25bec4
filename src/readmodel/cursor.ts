import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Opaque list cursors: the keyset of the last row served, signed with an HMAC so a client can
 * neither forge a position nor read more than it was given. Format: `<payload>.<mac>`, both base64url.
 */
export function encodeCursor(key: Buffer, payload: unknown): string {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${body}.${mac(key, body)}`;
}

/** The payload of a cursor this service signed, or null for anything else. */
export function decodeCursor(key: Buffer, cursor: string): unknown {
  const dot = cursor.indexOf('.');
  if (dot <= 0 || dot !== cursor.lastIndexOf('.')) return null;
  const body = cursor.slice(0, dot);
  // Compare the text, not decoded bytes: base64 has spare bits, so two texts can decode alike.
  const given = Buffer.from(cursor.slice(dot + 1));
  const expected = Buffer.from(mac(key, body));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  try {
    return JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

function mac(key: Buffer, body: string): string {
  return createHmac('sha256', key).update(body).digest('base64url');
}
