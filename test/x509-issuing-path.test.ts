import { expect } from 'chai';

import { buildIssuingPath, isIssuerOf, MAX_ISSUING_PATH_LENGTH, parseCertificate, type ParsedCertificate } from '../src/x509/index.js';
import { derName, TestPki, type TestCertificate } from './helpers/pki.js';

function subjectsOf(path: ParsedCertificate[]): string[] {
  return path.map((certificate) => certificate.subject);
}

describe('buildIssuingPath', function () {
  let pki: TestPki;
  let root: ParsedCertificate;
  let intermediate: ParsedCertificate;
  let device: ParsedCertificate;
  let rootFiles: TestCertificate;
  let intermediateFiles: TestCertificate;

  before(function () {
    pki = TestPki.create();
    rootFiles = pki.rootCa('/O=Example IoT/CN=Root CA');
    intermediateFiles = pki.intermediateCa(rootFiles, '/O=Example IoT/CN=Device CA');
    root = parseCertificate(rootFiles.pem);
    intermediate = parseCertificate(intermediateFiles.pem);
    device = parseCertificate(pki.device(intermediateFiles, '/CN=device-0001').pem);
  });

  after(function () {
    pki.cleanup();
  });

  it('returns intermediate and root for a full chain', function () {
    expect(subjectsOf(buildIssuingPath(device, [device, intermediate, root]))).to.deep.equal([intermediate.subject, root.subject]);
  });

  it('accepts a chain that does not repeat the leaf', function () {
    expect(subjectsOf(buildIssuingPath(device, [intermediate, root]))).to.deep.equal([intermediate.subject, root.subject]);
  });

  it('returns an empty path for a chain with only the leaf', function () {
    expect(buildIssuingPath(device, [device])).to.deep.equal([]);
    expect(buildIssuingPath(device, [])).to.deep.equal([]);
  });

  it('ignores a foreign CA appended after the root', function () {
    const foreign = parseCertificate(pki.rootCa('/O=Public/CN=Some Public Root').pem);
    expect(subjectsOf(buildIssuingPath(device, [device, intermediate, root, foreign]))).to.deep.equal([
      intermediate.subject,
      root.subject,
    ]);
  });

  it('stops at a foreign CA placed before the real issuer', function () {
    const foreign = parseCertificate(pki.rootCa('/O=Public/CN=Some Public Root').pem);
    expect(buildIssuingPath(device, [device, foreign, intermediate, root])).to.deep.equal([]);
  });

  it('rejects a CA that copies the issuer name but has another key', function () {
    const impostor = parseCertificate(pki.rootCa('/O=Example IoT/CN=Device CA').pem);
    // The names match, so only the signature check keeps the impostor off the path.
    expect(impostor.subjectHash).to.equal(device.issuerHash);
    expect(isIssuerOf(impostor, device)).to.equal(false);
    expect(buildIssuingPath(device, [device, impostor, root])).to.deep.equal([]);
  });

  it('stops at an impostor root above the real intermediate', function () {
    const impostorRoot = parseCertificate(pki.rootCa('/O=Example IoT/CN=Root CA').pem);
    expect(subjectsOf(buildIssuingPath(device, [device, intermediate, impostorRoot]))).to.deep.equal([intermediate.subject]);
  });

  it('rejects an issuer without basicConstraints cA=TRUE', function () {
    const notCaFiles = pki.issue({ subject: '/CN=Not A CA' });
    const notCa = parseCertificate(notCaFiles.pem);
    const issuedByNotCa = parseCertificate(pki.device(notCaFiles, '/CN=device-0002').pem);
    expect(issuedByNotCa.x509.verify(notCa.x509.publicKey)).to.equal(true);
    expect(buildIssuingPath(issuedByNotCa, [notCa])).to.deep.equal([]);
  });

  it('links names that are equal only after canonicalisation', function () {
    // The issuer is PrintableString in upper case with extra spaces, but the CA subject is UTF8String.
    const issuerName = derName([
      [{ oid: '2.5.4.10', tag: 0x13, value: 'EXAMPLE   IOT' }],
      [{ oid: '2.5.4.3', tag: 0x13, value: ' device ca' }],
    ]);
    const subjectName = derName([[{ oid: '2.5.4.3', tag: 0x0c, value: 'device-0003' }]]);
    const leaf = parseCertificate(pki.issueWithNames({ subjectName, issuerName, signer: intermediateFiles }).pem);
    expect(leaf.issuerNameDer.equals(intermediate.subjectNameDer)).to.equal(false);
    expect(subjectsOf(buildIssuingPath(leaf, [intermediate, root]))).to.deep.equal([intermediate.subject, root.subject]);
  });

  it('stops when the root repeats', function () {
    expect(subjectsOf(buildIssuingPath(device, [device, intermediate, root, root, root]))).to.deep.equal([
      intermediate.subject,
      root.subject,
    ]);
  });

  it(`returns at most ${MAX_ISSUING_PATH_LENGTH} certificates`, function () {
    let issuerFiles = rootFiles;
    const cas: ParsedCertificate[] = [root];
    for (let level = 1; level <= MAX_ISSUING_PATH_LENGTH + 1; level++) {
      issuerFiles = pki.intermediateCa(issuerFiles, `/CN=Level ${level} CA`);
      cas.unshift(parseCertificate(issuerFiles.pem));
    }
    const leaf = parseCertificate(pki.device(issuerFiles, '/CN=deep-device').pem);

    const path = buildIssuingPath(leaf, cas);
    expect(path).to.have.length(MAX_ISSUING_PATH_LENGTH);
    expect(path[0]!.subject).to.equal(`CN=Level ${MAX_ISSUING_PATH_LENGTH + 1} CA`);
  });
});
