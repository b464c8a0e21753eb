/**
 * Test certificates made at test time with the `openssl` command, in a temporary directory.
 *
 *   const pki = TestPki.create();
 *   const root = pki.rootCa();
 *   const intermediate = pki.intermediateCa(root);
 *   const device = pki.device(intermediate, '/CN=device-0001');
 *   pki.opensslIssuerHash(device); // what `openssl x509 -issuer_hash -noout` prints
 *   pki.cleanup();
 *
 * Subjects use OpenSSL's `-subj` syntax. `issue()` gives full control over string types and
 * multi-valued RDNs. `issueWithNames()` takes hand-built DER names for types that `openssl req`
 * cannot write (UniversalString, VisibleString, invalid UTF-8), then signs in Node.
 * Keys are EC P-256 to keep key generation fast.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its private key, written to the PKI's directory. */
export interface TestCertificate {
  /** The certificate as PEM text. */
  readonly pem: string;
  readonly certPath: string;
  readonly keyPath: string;
}

/** Values of OpenSSL's `string_mask`, which choose the ASN.1 string type of each subject value. */
export type StringMask =
  /** UTF8String for everything except fixed-type attributes such as C (PrintableString) and emailAddress (IA5String). */
  | 'utf8only'
  /** PrintableString when possible, else T61String (Latin-1), else BMPString. */
  | 'default'
  /** PrintableString when possible, else BMPString. */
  | 'pkix'
  /** PrintableString when possible, else T61String. */
  | 'nombstr';

export interface IssueOptions {
  /**
   * Subject in `openssl req -subj` form, read as UTF-8, e.g. `/C=DE/O=Example IoT/CN=Device CA`.
   * Escape `/`, `+` and `\` inside a value with a backslash. `/` alone gives an empty subject.
   */
  subject: string;
  /** Signing CA. Omit for a self-signed certificate. */
  issuer?: TestCertificate;
  /** Adds basicConstraints cA=TRUE and keyUsage keyCertSign. Default false (a TLS client certificate). */
  ca?: boolean;
  /** Passes `-multivalue-rdn`, so `+` in `subject` joins attributes into one RDN, e.g. `/CN=a+CN=b`. */
  multiValueRdn?: boolean;
  /** Default `utf8only`. */
  stringMask?: StringMask;
  /** extendedKeyUsage of a non-CA certificate, in openssl's syntax. Default `clientAuth`. */
  extendedKeyUsage?: string;
  /** subjectAltName in openssl's syntax, for example `DNS:localhost,IP:127.0.0.1`. Default none. */
  subjectAltName?: string;
}

/** One attribute of a hand-built name: dotted OID, ASN.1 tag of the value, and its content octets. */
export interface RawAttribute {
  oid: string;
  /** e.g. 0x0c UTF8String, 0x12 NumericString, 0x13 PrintableString, 0x1a VisibleString, 0x1c UniversalString. */
  tag: number;
  /** Content octets. A string is written as UTF-8. */
  value: Buffer | string;
}

export interface RawNamesOptions {
  /** DER of the subject Name, e.g. from `derName`. */
  subjectName: Buffer;
  /** DER of the issuer Name. Defaults to `subjectName`, or to the signer's subject when `signer` is given. */
  issuerName?: Buffer;
  /** Key that signs the certificate. Defaults to the new certificate's own key (self-signed). */
  signer?: TestCertificate;
  /** Adds basicConstraints cA=TRUE. Default false. */
  ca?: boolean;
  /** Start of the validity period. Default one minute ago. */
  notBefore?: Date;
  /** End of the validity period. Default two days from now. */
  notAfter?: Date;
}

const OPENSSL_MISSING =
  'the `openssl` command must be installed to run these tests (Debian/Ubuntu package `openssl`)';

export class TestPki {
  /** Temporary directory that contains every file this PKI writes. */
  readonly dir: string;
  #counter = 0;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates an empty PKI in a new temporary directory. Throws if `openssl` is not installed. */
  static create(): TestPki {
    try {
      execFileSync('openssl', ['version'], { stdio: 'pipe' });
    } catch (error) {
      throw new Error(OPENSSL_MISSING, { cause: error });
    }
    return new TestPki(mkdtempSync(join(tmpdir(), 'hawkbit-ext-authz-pki-')));
  }

  /** Makes a certificate with `openssl req -x509`, self-signed or signed by `options.issuer`. */
  issue(options: IssueOptions): TestCertificate {
    const base = join(this.dir, `cert-${++this.#counter}`);
    const configPath = `${base}.cnf`;
    const certPath = `${base}.pem`;
    const keyPath = `${base}.key`;
    writeFileSync(configPath, requestConfig(options.stringMask ?? 'utf8only', options.ca ?? false, options.extendedKeyUsage, options.subjectAltName));

    const args = [
      'req', '-x509', '-new',
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', keyPath, '-out', certPath,
      '-config', configPath,
      '-subj', options.subject, '-utf8',
      '-days', '2',
      '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    ];
    if (options.multiValueRdn) {
      args.push('-multivalue-rdn');
    }
    if (options.issuer) {
      args.push('-CA', options.issuer.certPath, '-CAkey', options.issuer.keyPath);
    }
    runOpenSsl(args);

    return { pem: readFileSync(certPath, 'utf8'), certPath, keyPath };
  }

  /** Self-signed root CA. */
  rootCa(subject = '/O=hawkbit-ext-authz tests/CN=Test Root CA'): TestCertificate {
    return this.issue({ subject, ca: true });
  }

  /** CA certificate signed by `issuer`. */
  intermediateCa(issuer: TestCertificate, subject = '/O=hawkbit-ext-authz tests/CN=Test Intermediate CA'): TestCertificate {
    return this.issue({ subject, issuer, ca: true });
  }

  /** Device (leaf) certificate signed by `issuer`, e.g. `device(ca, '/CN=device-0001')`. Any subject works, with or without CN. */
  device(issuer: TestCertificate, subject: string): TestCertificate {
    return this.issue({ subject, issuer });
  }

  /** TLS server certificate for `localhost` and 127.0.0.1, signed by `issuer`. */
  server(issuer: TestCertificate, subject = '/CN=localhost'): TestCertificate {
    return this.issue({ subject, issuer, extendedKeyUsage: 'serverAuth', subjectAltName: 'DNS:localhost,IP:127.0.0.1' });
  }

  /**
   * Makes a certificate with hand-built DER names, signed with ECDSA P-256/SHA-256 in Node.
   * OpenSSL still reads the result, so `opensslIssuerHash` works on it.
   */
  issueWithNames(options: RawNamesOptions): TestCertificate {
    const base = join(this.dir, `cert-${++this.#counter}`);
    const certPath = `${base}.pem`;
    const keyPath = `${base}.key`;

    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));

    const signerKey = options.signer ? createPrivateKey(readFileSync(options.signer.keyPath)) : privateKey;
    const issuerName = options.issuerName ?? (options.signer ? subjectNameOf(options.signer.certPath) : options.subjectName);

    const ecdsaWithSha256 = der(0x30, der(0x06, encodeOid('1.2.840.10045.4.3.2')));
    const now = Date.now();
    // [3] extensions with one critical basicConstraints extension: cA TRUE.
    const basicConstraintsCa = der(
      0x30,
      der(0x06, encodeOid('2.5.29.19')),
      der(0x01, Buffer.from([0xff])),
      der(0x04, der(0x30, der(0x01, Buffer.from([0xff])))),
    );
    const extensions = options.ca ? [der(0xa3, der(0x30, basicConstraintsCa))] : [];
    const tbs = der(
      0x30,
      der(0xa0, der(0x02, Buffer.from([2]))),
      der(0x02, Buffer.concat([Buffer.from([0x01]), randomBytes(8)])),
      ecdsaWithSha256,
      issuerName,
      der(0x30, utcTime(options.notBefore ?? new Date(now - 60_000)), utcTime(options.notAfter ?? new Date(now + 2 * 86_400_000))),
      options.subjectName,
      publicKey.export({ type: 'spki', format: 'der' }),
      ...extensions,
    );
    const signature = sign('sha256', tbs, signerKey);
    const certificate = der(0x30, tbs, ecdsaWithSha256, der(0x03, Buffer.concat([Buffer.from([0]), signature])));

    const pem = toPem(certificate);
    writeFileSync(certPath, pem);
    return { pem, certPath, keyPath };
  }

  /** Runs `openssl x509 -issuer_hash -noout` on the certificate and returns the hash it prints. */
  opensslIssuerHash(certificate: TestCertificate): string {
    return runOpenSsl(['x509', '-in', certificate.certPath, '-noout', '-issuer_hash']).trim();
  }

  /** Runs `openssl x509 -subject_hash -noout` on the certificate and returns the hash it prints. */
  opensslSubjectHash(certificate: TestCertificate): string {
    return runOpenSsl(['x509', '-in', certificate.certPath, '-noout', '-subject_hash']).trim();
  }

  /** Runs `openssl asn1parse` on the certificate and returns its output, e.g. to check the string types of a subject. */
  opensslAsn1Parse(certificate: TestCertificate): string {
    return runOpenSsl(['asn1parse', '-in', certificate.certPath]);
  }

  /** Writes `contents` to a new file in the PKI directory and returns its path. */
  writeFile(name: string, contents: string | Buffer): string {
    const path = join(this.dir, name);
    writeFileSync(path, contents);
    return path;
  }

  /** Deletes the directory and everything in it. */
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Concatenates certificate PEMs in the given order, as a client sends its chain. */
export function chainPem(...certificates: TestCertificate[]): string {
  return certificates.map((certificate) => certificate.pem).join('');
}

/** Encodes PEM as Envoy does for `source.certificate` and XFCC `Cert`/`Chain`: only `\n`, space, `+`, `/` and `=`. */
export function envoyEncodePem(pem: string): string {
  const escapes: Record<string, string> = { '\n': '%0A', ' ': '%20', '+': '%2B', '/': '%2F', '=': '%3D' };
  return pem.replace(/[\n +/=]/g, (character) => escapes[character]!);
}

/** Builds a DER Name from RDNs, each a list of attributes (more than one makes a multi-valued RDN). */
export function derName(rdns: RawAttribute[][]): Buffer {
  return der(
    0x30,
    ...rdns.map((rdn) =>
      der(
        0x31,
        // DER sorts SET OF by encoding. OpenSSL re-sorts anyway, so the hash does not depend on it.
        ...rdn
          .map((attribute) =>
            der(
              0x30,
              der(0x06, encodeOid(attribute.oid)),
              der(attribute.tag, typeof attribute.value === 'string' ? Buffer.from(attribute.value, 'utf8') : attribute.value),
            ),
          )
          .sort(Buffer.compare),
      ),
    ),
  );
}

function requestConfig(stringMask: StringMask, ca: boolean, extendedKeyUsage = 'clientAuth', subjectAltName?: string): string {
  const extensions = ca
    ? ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign']
    : ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', `extendedKeyUsage = ${extendedKeyUsage}`];
  if (subjectAltName) {
    extensions.push(`subjectAltName = ${subjectAltName}`);
  }
  return [
    '[req]',
    'distinguished_name = dn',
    `string_mask = ${stringMask}`,
    'x509_extensions = ext',
    '[dn]',
    '[ext]',
    ...extensions,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '',
  ].join('\n');
}

function runOpenSsl(args: string[]): string {
  try {
    return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: string };
    if (failure.code === 'ENOENT') {
      throw new Error(OPENSSL_MISSING, { cause: error });
    }
    throw new Error(`openssl ${args.join(' ')} failed: ${failure.stderr ?? failure.message}`, { cause: error });
  }
}

/** Cuts the subject Name out of a PEM certificate by walking the TBSCertificate fields. */
function subjectNameOf(certPath: string): Buffer {
  const pem = readFileSync(certPath, 'utf8');
  const certificate = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');

  const tbs = elementAt(certificate, elementAt(certificate, 0).contentStart);
  let offset = tbs.contentStart;
  if (certificate[offset] === 0xa0) {
    offset = elementAt(certificate, offset).end;
  }
  // serialNumber, signature, issuer and validity come before the subject.
  for (let field = 0; field < 4; field++) {
    offset = elementAt(certificate, offset).end;
  }
  return certificate.subarray(offset, elementAt(certificate, offset).end);
}

function elementAt(buffer: Buffer, offset: number): { contentStart: number; end: number } {
  const first = buffer[offset + 1]!;
  if (first < 0x80) {
    return { contentStart: offset + 2, end: offset + 2 + first };
  }
  const lengthOctets = first & 0x7f;
  const length = buffer.readUIntBE(offset + 2, lengthOctets);
  return { contentStart: offset + 2 + lengthOctets, end: offset + 2 + lengthOctets + length };
}

function der(tag: number, ...contents: Buffer[]): Buffer {
  const content = Buffer.concat(contents);
  let length: Buffer;
  if (content.length < 0x80) {
    length = Buffer.from([content.length]);
  } else {
    const octets: number[] = [];
    for (let rest = content.length; rest > 0; rest = Math.floor(rest / 256)) {
      octets.unshift(rest % 256);
    }
    length = Buffer.from([0x80 | octets.length, ...octets]);
  }
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

function encodeOid(oid: string): Buffer {
  const arcs = oid.split('.').map((arc) => BigInt(arc));
  const values = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
  const octets: number[] = [];
  for (const value of values) {
    const group: number[] = [Number(value & 0x7fn)];
    for (let rest = value >> 7n; rest > 0n; rest >>= 7n) {
      group.unshift(Number(rest & 0x7fn) | 0x80);
    }
    octets.push(...group);
  }
  return Buffer.from(octets);
}

function utcTime(date: Date): Buffer {
  const text = date.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  return der(0x17, Buffer.from(text, 'ascii'));
}

function toPem(derCertificate: Buffer): string {
  const lines = derCertificate.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/** Order n of the NIST P-256 group. */
const P256_ORDER = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

/**
 * Re-encodes a P-256 ECDSA signature (r, s) as (r, n - s). The result is a
 * different DER encoding of the same certificate that still verifies, which
 * anyone holding the certificate can make without any key.
 */
export function reencodeEcdsaSignature(pem: string): string {
  const bytes = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const outer = readTlv(bytes, 0);
  const tbs = readTlv(bytes, outer.contentStart);
  const algorithm = readTlv(bytes, tbs.end);
  const bitString = readTlv(bytes, algorithm.end);
  const signature = readTlv(bytes, bitString.contentStart + 1);
  const r = readTlv(bytes, signature.contentStart);
  const s = readTlv(bytes, r.end);
  const sValue = BigInt(`0x${bytes.subarray(s.contentStart, s.end).toString('hex')}`);
  const flipped = P256_ORDER - sValue;
  let hex = flipped.toString(16);
  if (hex.length % 2) {
    hex = `0${hex}`;
  }
  let sBytes = Buffer.from(hex, 'hex');
  if (sBytes[0] & 0x80) {
    sBytes = Buffer.concat([Buffer.from([0]), sBytes]);
  }
  const newSignature = der(0x30, bytes.subarray(r.start, r.end), der(0x02, sBytes));
  const certificate = der(0x30, bytes.subarray(tbs.start, tbs.end), bytes.subarray(algorithm.start, algorithm.end), der(0x03, Buffer.concat([Buffer.from([0]), newSignature])));
  return toPem(certificate);
}

function readTlv(buffer: Buffer, start: number): { start: number; contentStart: number; end: number } {
  let length = buffer[start + 1];
  let contentStart = start + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    length = buffer.readUIntBE(start + 2, count);
    contentStart += count;
  }
  return { start, contentStart, end: contentStart + length };
}
