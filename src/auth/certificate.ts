import type { Authenticator, AuthContext, MethodResult } from './authenticator.js';
import type { CertificateMethodConfig, RequestLimits } from '../config/schema.js';
import { AddressSet } from '../net/cidr.js';
import type { TenantSettings } from '../store/store.js';
import { parseAuthorityList } from '../store/tenant-settings.js';
import { pinnedPathProblem } from './pinned-ca.js';
import {
  buildIssuingPath,
  CertificateCache,
  CertificateError,
  parseCertificate,
  parseClientCertChainHeader,
  parseClientCertHeader,
  parseXfcc,
  Rfc9440Error,
  TextCache,
  XfccError,
  type ParsedCertificate,
  type XfccElement,
} from '../x509/index.js';

const XFCC_HEADER = 'x-forwarded-client-cert';
/** RFC 9440 headers, read only from a trusted proxy. */
const CLIENT_CERT_HEADER = 'client-cert';
const CLIENT_CERT_CHAIN_HEADER = 'client-cert-chain';

/** The certificate a request presents and the rest of the chain that came with it. */
interface CertificateSource {
  leaf: ParsedCertificate;
  chain: readonly ParsedCertificate[];
  /** Fingerprints of the verified CAs above the leaf, set when first needed. */
  caFingerprints?: readonly string[];
}

/**
 * hawkBit's "certificate authentication by reverse proxy", with Envoy as the
 * proxy: the certificate's single CN must equal the controller id, and its
 * issuer hash (or the SHA-256 fingerprint of a CA on its verified issuing
 * path) must be in the tenant's `authentication.header.authority` list.
 *
 * The certificate comes from `source.certificate` or, when trusted, from
 * `x-forwarded-client-cert`. A trusted proxy in front of Envoy may instead
 * pass hawkBit's controller-id and authority headers. `source.principal`
 * is never read: it is a printed name, not proof.
 */
export class CertificateAuthenticator implements Authenticator {
  readonly method = 'certificate' as const;
  readonly #trustedProxies: AddressSet;
  /** Lower-case names of the headers only a trusted proxy may send, built once instead of on every Check. */
  readonly #proxyOnlyHeaders: readonly string[];
  /** `ddi.certificate.proxyHeaders` in lower case, as header lookups take them. */
  readonly #proxyControllerIdHeader: string;
  readonly #proxyAuthorityHeader: string;
  readonly #cache: CertificateCache;
  /**
   * Sources read from a whole XFCC value. Envoy writes the same value for a device on every
   * request, so a hit skips XFCC parsing, the chain checks and the certificate lookups.
   * NOTE: it keeps up to `cacheEntries` values of up to 8 KiB each. For 10,000 devices that
   * each send a chain of three 2048-bit RSA certificates, that is about 35 MiB (an estimate).
   */
  readonly #xfccSources: TextCache<CertificateSource>;
  /** Fingerprints of the verified CAs above a leaf, by leaf and chain fingerprints; bounded like the certificate cache. */
  readonly #paths = new Map<string, readonly string[]>();
  /** Certificates from RFC 9440 headers by their base64 DER. */
  readonly #derCache = new Map<string, ParsedCertificate>();
  /** Parsed pinned CAs by PEM text. */
  readonly #pinned = new Map<string, ParsedCertificate>();

  constructor(
    private readonly config: CertificateMethodConfig,
    private readonly limits: Pick<RequestLimits, 'maxCertificateBytes' | 'maxChainCertificates'>,
    private readonly cacheEntries = 10_000,
  ) {
    this.#trustedProxies = new AddressSet(config.trustedProxies);
    const { controllerIdHeader, authorityHeader } = config.proxyHeaders;
    this.#proxyControllerIdHeader = controllerIdHeader.toLowerCase();
    this.#proxyAuthorityHeader = authorityHeader.toLowerCase();
    this.#proxyOnlyHeaders = [controllerIdHeader, authorityHeader, `${authorityHeader}-0`, `${authorityHeader}-1`, CLIENT_CERT_HEADER, CLIENT_CERT_CHAIN_HEADER].map((name) =>
      name.toLowerCase(),
    );
    this.#cache = new CertificateCache(cacheEntries);
    this.#xfccSources = new TextCache(cacheEntries);
  }

  /** Lookups that found parsed certificates (in the certificate or the XFCC cache) and lookups that parsed, for metrics. */
  get cacheStats(): { hits: number; misses: number } {
    return { hits: this.#cache.stats.hits + this.#xfccSources.stats.hits, misses: this.#cache.stats.misses };
  }

  enabledFor(tenant: TenantSettings): boolean {
    return this.config.enabled && tenant.headerEnabled;
  }

  hasCredential(context: AuthContext): boolean {
    return (
      context.request.peerCertificate !== '' ||
      (this.config.trustXfcc && context.headers.has(XFCC_HEADER)) ||
      this.clientCertApplies(context) ||
      this.proxyHeadersApply(context)
    );
  }

  authenticate(context: AuthContext): MethodResult {
    if (this.proxyHeadersApply(context)) {
      return this.authenticateProxyHeaders(context);
    }

    const source = this.certificateSource(context);
    if ('outcome' in source) {
      return source;
    }
    const { leaf, chain } = source;

    // The signed-part digest also catches a copy whose signature was re-encoded.
    const revoked = context.tenant.revokedCertificates;
    if (revoked.size > 0 && (revoked.has(leaf.tbsSha256) || revoked.has(leaf.sha256))) {
      return { outcome: 'failure', reason: 'certificate_revoked' };
    }
    const names = leaf.subjectCommonNames;
    if (names.length === 0) {
      return { outcome: 'failure', reason: 'cn_missing' };
    }
    if (names.length > 1) {
      return { outcome: 'failure', reason: 'cn_multiple' };
    }
    if (names[0] !== context.target.controllerId) {
      return { outcome: 'failure', reason: 'cn_mismatch' };
    }
    if (!this.isTrusted(source, context.tenant.headerAuthority)) {
      return { outcome: 'failure', reason: 'issuer_not_trusted' };
    }
    // With pinned CAs the name hash only selects candidates; the signature decides.
    if (context.tenant.pinnedCaPems.length > 0) {
      const pinned = context.tenant.pinnedCaPems.map((pem) => this.pinnedCa(pem));
      const problem = pinnedPathProblem(leaf, [leaf, ...this.verifiedPath(leaf, chain)], pinned, Date.now());
      if (problem) {
        return { outcome: 'failure', reason: problem };
      }
    }
    return { outcome: 'success' };
  }

  /** Parses a pinned CA once per PEM text; pinned CAs were validated when stored. */
  private pinnedCa(pem: string): ParsedCertificate {
    let parsed = this.#pinned.get(pem);
    if (!parsed) {
      parsed = parseCertificate(pem);
      if (this.#pinned.size >= this.cacheEntries) {
        this.#pinned.delete(this.#pinned.keys().next().value as string);
      }
      this.#pinned.set(pem, parsed);
    }
    return parsed;
  }

  private verifiedPath(leaf: ParsedCertificate, chain: readonly ParsedCertificate[]): ParsedCertificate[] {
    return chain.length === 0 ? [] : buildIssuingPath(leaf, [...chain]);
  }

  /** Trusted when the issuer hash, or a verified CA's fingerprint, is in the tenant's list. */
  private isTrusted(source: CertificateSource, authority: readonly string[]): boolean {
    if (authority.length === 0) {
      return false;
    }
    if (authority.includes(source.leaf.issuerHash)) {
      return true;
    }
    if (source.chain.length === 0) {
      return false;
    }
    source.caFingerprints ??= this.verifiedCaFingerprints(source.leaf, source.chain);
    // NOTE: a root the client does not send cannot be matched by fingerprint; trust it by issuer hash instead.
    return source.caFingerprints.some((fingerprint) => authority.includes(fingerprint));
  }

  /** Builds the issuing path once per leaf and chain; signature checks are the costly part. */
  private verifiedCaFingerprints(leaf: ParsedCertificate, chain: readonly ParsedCertificate[]): readonly string[] {
    let key = leaf.sha256;
    for (const certificate of chain) {
      key += `,${certificate.sha256}`;
    }
    let fingerprints = this.#paths.get(key);
    if (!fingerprints) {
      fingerprints = buildIssuingPath(leaf, [...chain]).map((ca) => ca.sha256);
      if (this.#paths.size >= this.cacheEntries) {
        this.#paths.delete(this.#paths.keys().next().value as string);
      }
      this.#paths.set(key, fingerprints);
    }
    return fingerprints;
  }

  /**
   * Returns the leaf and the rest of the chain, or the result to report when
   * there is none or it cannot be read.
   */
  private certificateSource(context: AuthContext): CertificateSource | MethodResult {
    const peer = context.request.peerCertificate;
    if (peer === '' && this.clientCertApplies(context)) {
      return this.clientCertSource(context);
    }
    const xfccValues = context.headers.all(XFCC_HEADER);
    // Only a source read from the XFCC value alone is cached, because with a peer certificate it depends on both.
    const cacheKey = peer === '' && this.config.trustXfcc && xfccValues.length === 1 ? xfccValues[0] : undefined;
    if (cacheKey !== undefined) {
      const cached = this.#xfccSources.get(cacheKey);
      if (cached) {
        return cached;
      }
    }

    let element: XfccElement | undefined;
    if (xfccValues.length > 0 && this.config.trustXfcc) {
      const parsed = this.readXfcc(xfccValues);
      if ('outcome' in parsed) {
        return parsed;
      }
      element = parsed.element;
    }

    try {
      if (peer === '' && !element) {
        // Certificate headers without trust are failed credentials, not absent ones, so the log names the reason.
        if (xfccValues.length > 0) {
          return { outcome: 'failure', reason: 'xfcc_untrusted' };
        }
        if (this.carriesProxyHeaders(context)) {
          return { outcome: 'failure', reason: 'proxy_untrusted' };
        }
        return { outcome: 'absent' };
      }
      const encodedCert = element?.get('cert')?.[0];
      if (peer.length > this.limits.maxCertificateBytes || (encodedCert?.length ?? 0) > this.limits.maxCertificateBytes) {
        return { outcome: 'failure', reason: 'certificate_too_large' };
      }
      // Bounded before parsing, so an attacker's long chain costs no signature checks.
      const encodedChain = element?.get('chain')?.[0] ?? '';
      const chainBlocks = countOccurrences(encodedChain, 'BEGIN%20CERTIFICATE');
      if (chainBlocks > this.limits.maxChainCertificates || encodedChain.length > this.limits.maxCertificateBytes * this.limits.maxChainCertificates) {
        return { outcome: 'failure', reason: 'chain_too_long' };
      }
      const xfccChain = element ? this.xfccChain(element) : [];
      const xfccLeaf = encodedCert !== undefined ? this.#cache.parseEnvoyCertificate(encodedCert) : xfccChain[0];

      if (peer !== '') {
        const leaf = this.#cache.parseEnvoyCertificate(peer);
        // XFCC's chain belongs to this leaf only if it names the same certificate.
        const sameLeaf = xfccLeaf !== undefined && xfccLeaf.sha256 === leaf.sha256;
        return { leaf, chain: sameLeaf ? withoutLeaf(xfccChain, leaf) : [] };
      }
      if (!xfccLeaf) {
        return { outcome: 'failure', reason: 'certificate_missing' };
      }
      const source: CertificateSource = { leaf: xfccLeaf, chain: Object.freeze(withoutLeaf(xfccChain, xfccLeaf)) };
      if (cacheKey !== undefined) {
        this.#xfccSources.set(cacheKey, source);
      }
      return source;
    } catch (error) {
      if (error instanceof CertificateError) {
        return { outcome: 'failure', reason: 'certificate_invalid' };
      }
      throw error;
    }
  }

  /** Returns whether the request carries any header that only a trusted proxy may send. */
  private carriesProxyHeaders(context: AuthContext): boolean {
    for (const name of this.#proxyOnlyHeaders) {
      if (context.headers.has(name)) {
        return true;
      }
    }
    return false;
  }

  /** Returns whether a trusted proxy in front of Envoy sent the RFC 9440 `Client-Cert` header. */
  private clientCertApplies(context: AuthContext): boolean {
    return this.#trustedProxies.size > 0 && context.headers.has(CLIENT_CERT_HEADER) && this.#trustedProxies.has(context.request.sourceAddress);
  }

  /** Reads the leaf from `Client-Cert` and the chain from `Client-Cert-Chain` (RFC 9440). */
  private clientCertSource(context: AuthContext): CertificateSource | MethodResult {
    const certValue = context.headers.single(CLIENT_CERT_HEADER);
    const chainValues = context.headers.all(CLIENT_CERT_CHAIN_HEADER);
    if (typeof certValue !== 'string' || chainValues.length > 1) {
      return { outcome: 'failure', reason: 'client_cert_malformed' };
    }
    // Base64 makes a certificate about 4/3 of its DER size; the bound is on DER.
    const maxChars = Math.ceil((this.limits.maxCertificateBytes * 4) / 3) + 16;
    if (certValue.length > maxChars) {
      return { outcome: 'failure', reason: 'certificate_too_large' };
    }
    const chainValue = chainValues[0] ?? '';
    if (chainValue.length > maxChars * this.limits.maxChainCertificates || chainValue.split(',').length > this.limits.maxChainCertificates) {
      return { outcome: 'failure', reason: 'chain_too_long' };
    }
    try {
      const leaf = this.parseDer(parseClientCertHeader(certValue));
      const chain = chainValue === '' ? [] : parseClientCertChainHeader(chainValue).map((der) => this.parseDer(der));
      return { leaf, chain: withoutLeaf(chain, leaf) };
    } catch (error) {
      if (error instanceof Rfc9440Error) {
        return { outcome: 'failure', reason: 'client_cert_malformed' };
      }
      if (error instanceof CertificateError) {
        return { outcome: 'failure', reason: 'certificate_invalid' };
      }
      throw error;
    }
  }

  /** Parses DER once per certificate; the map is bounded like the other caches. */
  private parseDer(der: Buffer): ParsedCertificate {
    const key = der.toString('base64');
    let parsed = this.#derCache.get(key);
    if (!parsed) {
      parsed = parseCertificate(der);
      if (this.#derCache.size >= this.cacheEntries) {
        this.#derCache.delete(this.#derCache.keys().next().value as string);
      }
      this.#derCache.set(key, parsed);
    }
    return parsed;
  }

  private readXfcc(values: readonly string[]): { element: XfccElement } | MethodResult {
    let elements: XfccElement[];
    try {
      elements = values.flatMap((value) => parseXfcc(value));
    } catch (error) {
      if (error instanceof XfccError) {
        return { outcome: 'failure', reason: 'xfcc_malformed' };
      }
      throw error;
    }
    if (elements.length !== 1) {
      return { outcome: 'failure', reason: elements.length === 0 ? 'xfcc_malformed' : 'xfcc_multiple_elements' };
    }
    return { element: elements[0] };
  }

  private xfccChain(element: XfccElement): ParsedCertificate[] {
    const encoded = element.get('chain')?.[0];
    if (encoded === undefined) {
      return [];
    }
    return this.#cache.parseEnvoyChain(encoded);
  }

  private proxyHeadersApply(context: AuthContext): boolean {
    return (
      this.#trustedProxies.size > 0 &&
      context.headers.has(this.#proxyControllerIdHeader) &&
      this.#trustedProxies.has(context.request.sourceAddress)
    );
  }

  /**
   * A trusted proxy in front of Envoy verified the certificate and passes
   * hawkBit's headers: the controller id header must equal the path's, and
   * one authority value must be trusted by the tenant.
   */
  private authenticateProxyHeaders(context: AuthContext): MethodResult {
    const controllerId = context.headers.single(this.#proxyControllerIdHeader);
    if (controllerId === null || controllerId === undefined) {
      return { outcome: 'failure', reason: 'proxy_headers_invalid' };
    }
    if (controllerId !== context.target.controllerId) {
      return { outcome: 'failure', reason: 'cn_mismatch' };
    }
    const trusted = context.tenant.headerAuthority;
    const offered = proxyAuthorities(context, this.#proxyAuthorityHeader);
    if (offered.length === 0) {
      return { outcome: 'failure', reason: 'proxy_headers_invalid' };
    }
    return offered.some((value) => trusted.includes(value))
      ? { outcome: 'success' }
      : { outcome: 'failure', reason: 'issuer_not_trusted' };
  }
}

/**
 * Authority values from a trusted proxy: the bare header split like the
 * tenant list, or else the indexed `NAME-0`, `NAME-1`, ... (starting at 1 when
 * `-0` is absent) up to the first gap, as hawkBit reads them. `header` is lower-case.
 */
function proxyAuthorities(context: AuthContext, header: string): string[] {
  const bare = context.headers.all(header);
  if (bare.length > 0) {
    return bare.flatMap((value) => parseAuthorityList(value));
  }
  const values: string[] = [];
  const start = context.headers.has(`${header}-0`) ? 0 : 1;
  for (let index = start; index < start + 64; index++) {
    const value = context.headers.all(`${header}-${index}`);
    if (value.length === 0) {
      break;
    }
    values.push(...value.map((item) => item.trim().toLowerCase().replace(/:/g, '')));
  }
  return values;
}

function withoutLeaf(chain: ParsedCertificate[], leaf: ParsedCertificate): ParsedCertificate[] {
  return chain.filter((certificate) => certificate.sha256 !== leaf.sha256);
}

/** Counts the non-overlapping occurrences of `part` in `text`, without splitting it into pieces. */
function countOccurrences(text: string, part: string): number {
  let count = 0;
  for (let index = text.indexOf(part); index !== -1; index = text.indexOf(part, index + part.length)) {
    count++;
  }
  return count;
}
