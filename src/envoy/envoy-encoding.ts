import { createHash, X509Certificate } from 'node:crypto';

/**
 * Encodes a PEM the way Envoy does for `source.certificate` and XFCC `Cert`
 * and `Chain`: exactly newline, space, `+`, `/` and `=` are percent-encoded.
 */
export function encodePemLikeEnvoy(pem: string): string {
  return pem.replace(/[\n +/=]/g, (character) => {
    switch (character) {
      case '\n':
        return '%0A';
      case ' ':
        return '%20';
      case '+':
        return '%2B';
      case '/':
        return '%2F';
      default:
        return '%3D';
    }
  });
}

/** Splits a file's text into PEM certificate blocks, each ending in a newline. */
export function pemBlocks(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((block) => `${block}\n`);
}

/**
 * Builds one XFCC element as Envoy's SANITIZE_SET writes it with cert, chain
 * and subject enabled: `Hash=...;Cert="...";Chain="...";Subject="..."`.
 */
export function xfccElementLikeEnvoy(leafPem: string, chainPems: readonly string[]): string {
  const leaf = new X509Certificate(leafPem);
  const hash = createHash('sha256').update(leaf.raw).digest('hex');
  const subject = leaf.subject.split('\n').reverse().join(',').replace(/"/g, '\\"');
  const parts = [`Hash=${hash}`, `Cert="${encodePemLikeEnvoy(leafPem)}"`];
  if (chainPems.length > 0) {
    parts.push(`Chain="${encodePemLikeEnvoy([leafPem, ...chainPems].join(''))}"`);
  }
  parts.push(`Subject="${subject}"`);
  return parts.join(';');
}
