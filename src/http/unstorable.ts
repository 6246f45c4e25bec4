import { Transform, type TransformCallback } from 'node:stream';

/**
 * Input JSON allows and PostgreSQL (or JavaScript) cannot keep as sent: NUL, half a surrogate pair,
 * nesting deeper than any request needs, numbers that are not finite or integers beyond 2^53.
 * Bodies are checked once on their raw text; only a body found bad is walked, to name the field.
 */

/** NUL, or half a surrogate pair: valid in JSON and URLs, refused by PostgreSQL text and jsonb. */
// eslint-disable-next-line no-control-regex -- finding NUL is the point
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Deeper JSON than any request needs; PostgreSQL's jsonb parser would also refuse much deeper input. */
export const MAX_JSON_DEPTH = 64;

/**
 * More values than any request needs (a 1 MiB Alertmanager notification holds about 35,000; signal
 * `data` of 64 KiB at most 32,768): a body over it is refused as its bytes arrive (see
 * `JsonValueCounter`), so a megabyte of tiny items costs a count of its first 200 KB, not the reading,
 * decoding and building of half a million values.
 */
export const MAX_JSON_VALUES = 100_000;

const TEXT_MESSAGE = 'must not contain NUL characters or unpaired surrogates';
const DEPTH_MESSAGE = `must not nest deeper than ${MAX_JSON_DEPTH} levels`;
export const VALUES_MESSAGE = `must not hold more than ${MAX_JSON_VALUES.toLocaleString('en')} values`;
const NUMBER_MESSAGE = `must be a finite number, and an integer within ±${Number.MAX_SAFE_INTEGER} (send larger ones as strings)`;

export interface Unstorable {
  /** Dotted path of the field (`tags.3`, `data.k`); '' for the whole value. */
  path: string;
  message: string;
}

const isHex = (code: number) =>
  (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66);

/**
 * The problem with raw JSON text, or null: one pass, no allocation for good input. It runs before
 * the text is parsed and stops at the first problem; on text that does not parse, what it says
 * does not count (the parse error does).
 */
export function scanJsonText(text: string): string | null {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: only escapes can spell NUL or a lone surrogate (decoded UTF-8 never holds one).
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === 0x22) break;
        if (s !== 0x5c) continue;
        if (text.charCodeAt(i + 1) !== 0x75) {
          i++;
          continue;
        }
        const unit = escapedUnit(text, i);
        if (unit === 0) return TEXT_MESSAGE;
        if (unit >= 0xdc00 && unit <= 0xdfff) return TEXT_MESSAGE; // a low half with no high half before it
        if (unit >= 0xd800 && unit <= 0xdbff) {
          const next =
            text.charCodeAt(i + 6) === 0x5c && text.charCodeAt(i + 7) === 0x75
              ? escapedUnit(text, i + 6)
              : -1;
          if (next < 0xdc00 || next > 0xdfff) return TEXT_MESSAGE;
          i += 6;
        }
        i += 5;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) return DEPTH_MESSAGE;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      let plain = true;
      for (; end < text.length; end++) {
        const n = text.charCodeAt(end);
        if (n === 0x2e || n === 0x65 || n === 0x45 || n === 0x2b || n === 0x2d) plain = false;
        else if (n < 0x30 || n > 0x39) break;
      }
      // Up to 15 digits is always exact; longer integers and exponents need a look.
      if (!plain || end - i > 15) {
        const value = Number(text.slice(i, end));
        if (!Number.isFinite(value) || (plain && !Number.isSafeInteger(value))) return NUMBER_MESSAGE;
      }
      i = end - 1;
    }
  }
  return null;
}

/** 1 for the bytes that, outside strings, begin another value: `,`, `[` and `{`. */
const OPENS_VALUE = new Uint8Array(256);
OPENS_VALUE[0x2c] = OPENS_VALUE[0x5b] = OPENS_VALUE[0x7b] = 1;

/**
 * Counts the values of a JSON body as its bytes arrive, chunk by chunk: every value but the first
 * follows a `,` or opens a container, outside strings. UTF-8 never puts `"`, `\\` or `,` inside a
 * multi-byte character, so the count is exact across chunk boundaries with two flags of state.
 */
export class JsonValueCounter {
  private values = 1;
  private inString = false;
  private escaped = false;

  /** Takes the next bytes; false once the body holds more than MAX_JSON_VALUES values. */
  feed(bytes: Uint8Array): boolean {
    let { values, inString, escaped } = this;
    const n = bytes.length;
    // A loop for each state: outside strings one table lookup a byte, no branch per kind of byte.
    for (let i = 0; i < n;) {
      if (inString) {
        for (; i < n; i++) {
          const b = bytes[i]!;
          if (escaped) escaped = false;
          else if (b === 0x5c) escaped = true;
          else if (b === 0x22) {
            inString = false;
            i++;
            break;
          }
        }
      } else {
        for (; i < n; i++) {
          const b = bytes[i]!;
          if (b === 0x22) {
            inString = true;
            i++;
            break;
          }
          values += OPENS_VALUE[b]!;
        }
      }
    }
    this.values = values;
    this.inString = inString;
    this.escaped = escaped;
    return values <= MAX_JSON_VALUES;
  }
}

/**
 * Bytes of a body counted at a time (~8 µs), with the event loop free in between. A socket reads
 * 64 KiB at once: eight uploads counted a read at a time made every other request wait behind
 * half a millisecond of counting at each of its turns (another user's GET 2.1× slower, 1.25× so).
 */
export const COUNT_SLICE_BYTES = 8 * 1024;

/**
 * Passes a JSON body through as it is while counting its values, a slice at a time; fails with
 * `tooMany()` once the body holds more than MAX_JSON_VALUES.
 */
export class CountingJsonValues extends Transform {
  receivedBytes = 0;
  private readonly counter = new JsonValueCounter();

  constructor(private readonly tooMany: () => Error) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.receivedBytes += chunk.length;
    const count = (from: number) => {
      const to = Math.min(from + COUNT_SLICE_BYTES, chunk.length);
      if (!this.counter.feed(chunk.subarray(from, to))) return callback(this.tooMany());
      if (to === chunk.length) return callback(null, chunk);
      setImmediate(count, to);
    };
    count(0);
  }
}

/** The UTF-16 unit of the `\uXXXX` escape at `at`, or -1 when it is not one. */
function escapedUnit(text: string, at: number): number {
  for (let k = at + 2; k < at + 6; k++) if (!isHex(text.charCodeAt(k))) return -1;
  return Number.parseInt(text.slice(at + 2, at + 6), 16);
}

/**
 * Where a parsed value holds what scanJsonText refuses, or null. Recursive, without copying paths
 * while it walks; callers bound the depth first (scanJsonText, or a URL's flat params).
 */
export function findUnstorable(value: unknown, depth = 0): Unstorable | null {
  if (typeof value === 'string') return UNSTORABLE.test(value) ? { path: '', message: TEXT_MESSAGE } : null;
  if (typeof value === 'number')
    return !Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value))
      ? { path: '', message: NUMBER_MESSAGE }
      : null;
  if (value === null || typeof value !== 'object') return null;
  if (depth >= MAX_JSON_DEPTH) return { path: '', message: DEPTH_MESSAGE };
  const keys = Object.keys(value);
  const items = value as Record<string, unknown>;
  for (const key of keys) {
    if (UNSTORABLE.test(key)) return { path: key, message: TEXT_MESSAGE };
    const found = findUnstorable(items[key], depth + 1);
    if (found) return { path: found.path === '' ? key : `${key}.${found.path}`, message: found.message };
  }
  return null;
}
