// The only module other parts of the service import from `src/x509`.
export { CertificateCache, DEFAULT_CERTIFICATE_CACHE_ENTRIES, MAX_CHAIN_CERTIFICATES } from './certificate-cache.js';
export { MAX_CERTIFICATE_DER_BYTES, parseCertificate, type ParsedCertificate } from './certificate.js';
export { CertificateError, Rfc9440Error, XfccError, type CertificateErrorCode, type Rfc9440ErrorCode, type XfccErrorCode } from './errors.js';
export { buildIssuingPath, isIssuerOf, MAX_ISSUING_PATH_LENGTH } from './issuing-path.js';
export { canonicalNameEncoding, openSslNameHash } from './name-hash.js';
export { decodeEnvoyPem, MAX_ENCODED_PEM_CHARS, splitPemChain } from './pem.js';
export { MAX_CLIENT_CERT_CHARS, parseClientCertChainHeader, parseClientCertHeader } from './rfc9440.js';
export { TextCache, TEXT_CACHE_MAX_CHARS } from './text-cache.js';
export { MAX_XFCC_CHARS, parseXfcc, type XfccElement } from './xfcc.js';
