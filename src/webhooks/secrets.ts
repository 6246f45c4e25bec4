import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const SEALED = 'sealed:v1:';

/**
 * Webhook secrets at rest: sealed with AES-256-GCM under a key derived from WEBHOOK_SECRET_KEY, or
 * stored as given without one. `open` reads both, so setting a key later keeps older rows readable.
 */
export class SecretBox {
  private readonly key: Buffer | null;

  constructor(passphrase: string | undefined) {
    this.key = passphrase ? createHash('sha256').update(`its webhook secrets\0${passphrase}`).digest() : null;
  }

  seal(secret: string): string {
    if (!this.key) return secret;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return `${SEALED}${[iv, cipher.getAuthTag(), sealed].map((part) => part.toString('base64')).join(':')}`;
  }

  open(stored: string): string {
    if (!stored.startsWith(SEALED)) return stored;
    if (!this.key) throw new Error('the webhook secret is encrypted and WEBHOOK_SECRET_KEY is not set');
    const [iv, tag, sealed] = stored
      .slice(SEALED.length)
      .split(':')
      .map((part) => Buffer.from(part, 'base64'));
    const decipher = createDecipheriv('aes-256-gcm', this.key, iv!);
    decipher.setAuthTag(tag!);
    return Buffer.concat([decipher.update(sealed!), decipher.final()]).toString('utf8');
  }
}
