import { createHmac, hash } from 'node:crypto';

/** Length of a SHA-256 digest in bytes. */
export const DIGEST_BYTES = 32;

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

  /**
   * Writes the digest of a secret into `target` at `offset`, DIGEST_BYTES long, so that
   * many digests can share one buffer instead of each carrying its own backing store.
   */
  digestInto(secret: string, target: Buffer, offset: number): void {
    if (this.#hmacKey) {
      createHmac('sha256', this.#hmacKey).update(secret, 'utf8').digest().copy(target, offset);
      return;
    }
    target.write(hash('sha256', secret, 'binary'), offset, DIGEST_BYTES, 'latin1');
  }

  /**
   * Compares a presented secret with a stored digest in constant time: every
   * byte is compared, whatever the first difference. The digest is taken as a
   * Latin-1 string (one character per byte), which costs less than half of a
   * digest Buffer on every token Check ('binary' is Node's name for Latin-1).
   */
  matches(presented: string, storedDigest: Buffer | undefined): boolean {
    if (!storedDigest || storedDigest.length !== DIGEST_BYTES) {
      return false;
    }
    const digest = this.#hmacKey ? createHmac('sha256', this.#hmacKey).update(presented, 'utf8').digest('binary') : hash('sha256', presented, 'binary');
    let difference = 0;
    for (let index = 0; index < DIGEST_BYTES; index++) {
      difference |= digest.charCodeAt(index) ^ storedDigest[index];
    }
    return difference === 0;
  }
}
