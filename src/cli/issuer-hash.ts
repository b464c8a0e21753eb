import { readFile } from 'node:fs/promises';

import {
  buildIssuingPath,
  CertificateError,
  parseCertificate,
  splitPemChain,
  type ParsedCertificate,
} from '../x509/index.js';

const USAGE = 'usage: hawkbit-ext-authz issuer-hash FILE';
const FILE_HELP =
  'FILE must hold a PEM certificate, optionally followed by its CA certificates (leaf first), or one DER certificate';

/**
 * Implements `hawkbit-ext-authz issuer-hash FILE`. The first output line is the leaf's issuer
 * hash as `openssl x509 -issuer_hash` prints it, the value for hawkBit's
 * `authentication.header.authority`. Labelled lines follow for the leaf, for each CA
 * certificate on the verified issuing path built from the rest of the file, and for each
 * certificate that is not on that path. Returns 0 on success and 2 on a usage or input error.
 */
export async function issuerHashCommand(
  args: string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  if (args.length !== 1 || args[0] === '') {
    const problem = args.length === 0 || args[0] === '' ? 'missing argument FILE' : `expected one argument, got ${args.length}`;
    err.write(`issuer-hash: ${problem}\n${USAGE}\n${FILE_HELP}.\n`);
    return 2;
  }
  const file = args[0]!;

  let contents: Buffer;
  try {
    contents = await readFile(file);
  } catch (error) {
    err.write(`issuer-hash: cannot read ${file}: ${(error as Error).message}\nCheck the path and the file permissions.\n`);
    return 2;
  }

  let certificates: ParsedCertificate[];
  try {
    certificates = parseFile(contents);
  } catch (error) {
    if (!(error instanceof CertificateError)) {
      throw error;
    }
    err.write(`issuer-hash: ${file}: ${error.message}\n${FILE_HELP}.\n`);
    return 2;
  }
  if (certificates.length === 0) {
    err.write(`issuer-hash: no certificate found in ${file}\n${FILE_HELP}.\n`);
    return 2;
  }

  const [leaf, ...rest] = certificates as [ParsedCertificate, ...ParsedCertificate[]];
  const path = buildIssuingPath(leaf, rest);
  const onPath = new Set(path.map((certificate) => certificate.sha256));

  const lines = [
    leaf.issuerHash,
    `leaf sha256=${leaf.sha256} tbs_sha256=${leaf.tbsSha256} issuer_hash=${leaf.issuerHash} subject="${leaf.subject}" issuer="${leaf.issuer}"`,
    ...path.map(
      (ca) =>
        `ca sha256=${ca.sha256} subject_hash=${ca.subjectHash} issuer_hash=${ca.issuerHash} subject="${ca.subject}" (CA on verified path)`,
    ),
    ...rest
      .filter((certificate) => !onPath.has(certificate.sha256))
      .map((certificate) => `ignored sha256=${certificate.sha256} subject="${certificate.subject}" (not on verified path)`),
  ];
  out.write(`${lines.join('\n')}\n`);

  if (leaf.isCa) {
    err.write(`issuer-hash: warning: the first certificate in ${file} is a CA certificate; put the device certificate first\n`);
  }
  return 0;
}

/** Reads every certificate of a PEM file in order, or the single certificate of a DER file. */
function parseFile(contents: Buffer): ParsedCertificate[] {
  const text = contents.toString('latin1');
  if (text.includes('-----BEGIN ')) {
    return splitPemChain(text).map((block, index) => {
      try {
        return parseCertificate(block);
      } catch (error) {
        if (error instanceof CertificateError) {
          throw new CertificateError(error.code, `certificate ${index + 1} is invalid: ${error.message}`, { cause: error });
        }
        throw error;
      }
    });
  }

  // A DER certificate starts with a SEQUENCE tag, so a file that does not is no certificate at all.
  if (contents[0] !== 0x30) {
    return [];
  }
  return [parseCertificate(contents)];
}
