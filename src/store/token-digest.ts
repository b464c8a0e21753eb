import { createHmac, hash, timingSafeEqual } from 'node:crypto';

/**
 * Turns a secret (target token or gateway key) into the digest that stores keep.
 * SHA-256 by default, HMAC-SHA-256 when a key is configured. Tokens are long
 * random strings, so a fast digest is enough and every cold check stays cheap.
 */
export class TokenDigester {
  readonly #hmacKey: Buffer | undefined;

  constructor(hmacKey?: string) {
    this.#hmacKey = hmacKey === undefined || hmacKey === '' ? undefined : Buffer.from(hmacKey, 'utf8');
  }

  get algorithm(): 'sha256' | 'hmac-sha256' {
    return this.#hmacKey ? 'hmac-sha256' : 'sha256';
  }

  digest(secret: string): Buffer {
    if (this.#hmacKey) {
      return createHmac('sha256', this.#hmacKey).update(secret, 'utf8').digest();
    }
    // One-shot hash: about half the cost of createHash().update().digest() for a short secret, on every token Check.
    return hash('sha256', secret, 'buffer');
  }

  /** Compares a presented secret with a stored digest in constant time. */
  matches(presented: string, storedDigest: Buffer | undefined): boolean {
    if (!storedDigest || storedDigest.length !== 32) {
      return false;
    }
    return timingSafeEqual(this.digest(presented), storedDigest);
  }
}
