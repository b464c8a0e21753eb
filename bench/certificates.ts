/**
 * Certificates for the certificate scenarios, made with the `openssl` command
 * in the benchmark's temporary folder: a root CA, an intermediate CA below it,
 * and a device certificate (CN = controller id) signed by each CA.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireCommand } from './tools.js';

export interface BenchCertificates {
  rootPem: string;
  intermediatePem: string;
  /** Device certificate signed by the root CA directly. */
  directDevicePem: string;
  /** Device certificate signed by the intermediate CA. */
  chainedDevicePem: string;
  /** `openssl x509 -issuer_hash` of the directly signed device certificate. */
  directIssuerHash: string;
  /** SHA-256 fingerprint of the root CA, lower-case hex without colons. */
  rootFingerprint: string;
}

/** Makes the certificates in `folder`; every device certificate has CN = `controllerId`. */
export function makeCertificates(folder: string, controllerId: string): BenchCertificates {
  requireCommand('openssl', ['version'], 'openssl');
  const root = issue(folder, 'root', '/O=hawkbit-ext-authz bench/CN=Bench Root CA', true);
  const intermediate = issue(folder, 'intermediate', '/O=hawkbit-ext-authz bench/CN=Bench Issuing CA', true, root);
  const direct = issue(folder, 'direct-device', `/CN=${controllerId}`, false, root);
  const chained = issue(folder, 'chained-device', `/CN=${controllerId}`, false, intermediate);
  return {
    rootPem: readFileSync(root.cert, 'utf8'),
    intermediatePem: readFileSync(intermediate.cert, 'utf8'),
    directDevicePem: readFileSync(direct.cert, 'utf8'),
    chainedDevicePem: readFileSync(chained.cert, 'utf8'),
    directIssuerHash: openssl(['x509', '-in', direct.cert, '-noout', '-issuer_hash']).trim(),
    rootFingerprint: createHash('sha256').update(new X509Certificate(readFileSync(root.cert)).raw).digest('hex'),
  };
}

interface KeyPair {
  cert: string;
  key: string;
}

function issue(folder: string, name: string, subject: string, ca: boolean, issuer?: KeyPair): KeyPair {
  const cert = join(folder, `${name}.crt`);
  const key = join(folder, `${name}.key`);
  const config = join(folder, `${name}.cnf`);
  const extensions = ca
    ? ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign']
    : ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = clientAuth'];
  writeFileSync(
    config,
    ['[req]', 'distinguished_name = dn', 'x509_extensions = ext', '[dn]', '[ext]', ...extensions, 'subjectKeyIdentifier = hash', ''].join('\n'),
  );
  const args = ['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  args.push('-keyout', key, '-out', cert, '-config', config, '-subj', subject, '-days', '2');
  if (issuer) {
    args.push('-CA', issuer.cert, '-CAkey', issuer.key);
  }
  openssl(args);
  return { cert, key };
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
