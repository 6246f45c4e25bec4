import { createHmac, createPrivateKey, sign, type KeyObject } from 'node:crypto';

export type SigningAlgorithm = 'HS256' | 'RS256' | 'ES256';

/**
 * Signs a JWT: what `its token` uses to mint tokens with the configured secret, and what tests use
 * to mint real tokens of every kind the API accepts.
 */
export function signToken(
  payload: Record<string, unknown>,
  algorithm: SigningAlgorithm,
  key: string | Buffer | KeyObject,
): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${encode({ alg: algorithm, typ: 'JWT' })}.${encode(payload)}`;
  let signature: Buffer;
  if (algorithm === 'HS256') {
    signature = createHmac('sha256', key as string | Buffer)
      .update(input)
      .digest();
  } else {
    const privateKey = typeof key === 'string' || Buffer.isBuffer(key) ? createPrivateKey(key) : key;
    // JOSE wants ECDSA signatures as r||s, not DER.
    signature = sign(
      'sha256',
      Buffer.from(input),
      algorithm === 'ES256' ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey,
    );
  }
  return `${input}.${signature.toString('base64url')}`;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90`, `90s`, `15m`, `1h`, `7d` → seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!match) throw new RangeError(`not a duration: ${text} (use e.g. 3600, 15m, 1h, 7d)`);
  return Number(match[1]) * UNIT_SECONDS[match[2] || 's']!;
}
