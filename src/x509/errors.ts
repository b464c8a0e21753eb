/** Stable codes for certificate failures, equal to the deny reasons of the same name. */
export type CertificateErrorCode = 'certificate_invalid';

/** Stable codes for XFCC failures, equal to the deny reasons of the same name. */
export type XfccErrorCode = 'xfcc_malformed';

/**
 * Raised for any certificate input that cannot be decoded: bad percent-encoding, bad PEM,
 * malformed DER, several certificates where one is expected, or a certificate OpenSSL rejects.
 */
export class CertificateError extends Error {
  override readonly name = 'CertificateError';
  readonly code: CertificateErrorCode;

  constructor(code: CertificateErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Raised for an `x-forwarded-client-cert` value that does not follow Envoy's format. */
export class XfccError extends Error {
  override readonly name = 'XfccError';
  readonly code: XfccErrorCode;

  constructor(code: XfccErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Stable code for a `Client-Cert` or `Client-Cert-Chain` value (RFC 9440) that cannot be parsed. */
export type Rfc9440ErrorCode = 'client_cert_malformed';

/** Raised for a `Client-Cert` or `Client-Cert-Chain` value that is not the Structured Field RFC 9440 defines. */
export class Rfc9440Error extends Error {
  override readonly name = 'Rfc9440Error';
  readonly code: Rfc9440ErrorCode;

  constructor(code: Rfc9440ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export function invalidCertificate(message: string, cause?: unknown): CertificateError {
  return new CertificateError('certificate_invalid', message, cause === undefined ? undefined : { cause });
}
