import { execFileSync } from 'node:child_process';

import { expect } from 'chai';

import { CertificateError, decodeEnvoyPem, parseCertificate, splitPemChain } from '../src/x509/index.js';
import { chainPem, derName, envoyEncodePem, TestPki, type TestCertificate } from './helpers/pki.js';

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
}

function expectCertificateError(action: () => unknown, label: string): void {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `${label}: thrown error`).to.be.instanceOf(CertificateError);
  expect((thrown as CertificateError).code, `${label}: code`).to.equal('certificate_invalid');
}

describe('parseCertificate', function () {
  let pki: TestPki;
  let root: TestCertificate;
  let device: TestCertificate;

  before(function () {
    pki = TestPki.create();
    root = pki.rootCa('/C=DE/O=Example IoT/CN=Device CA');
    device = pki.device(root, '/O=Example IoT/CN=device-0001');
  });

  after(function () {
    pki.cleanup();
  });

  it('computes the SHA-256 fingerprint openssl prints', function () {
    const printed = execFileSync('openssl', ['x509', '-in', device.certPath, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
    const expected = printed.trim().split('=')[1]!.replace(/:/g, '').toLowerCase();
    expect(parseCertificate(device.pem).sha256).to.equal(expected);
  });

  it('reads PEM text, a PEM buffer and DER alike', function () {
    const fromText = parseCertificate(device.pem);
    const fromPemBuffer = parseCertificate(Buffer.from(device.pem));
    const fromDer = parseCertificate(pemToDer(device.pem));
    expect(fromPemBuffer.sha256).to.equal(fromText.sha256);
    expect(fromDer.sha256).to.equal(fromText.sha256);
    expect(fromDer.der.equals(pemToDer(device.pem))).to.equal(true);
  });

  it('reports the issuer and subject hashes and names', function () {
    const parsed = parseCertificate(device.pem);
    expect(parsed.issuerHash).to.equal(pki.opensslIssuerHash(device));
    expect(parsed.subjectHash).to.equal(pki.opensslSubjectHash(device));
    expect(parsed.issuer).to.equal('C=DE, O=Example IoT, CN=Device CA');
    expect(parsed.subject).to.equal('O=Example IoT, CN=device-0001');
    expect(parsed.issuerNameDer.equals(parseCertificate(root.pem).subjectNameDer)).to.equal(true);
  });

  it('sets isCa from basicConstraints', function () {
    expect(parseCertificate(root.pem).isCa).to.equal(true);
    expect(parseCertificate(device.pem).isCa).to.equal(false);
  });

  describe('subjectCommonNames', function () {
    const cases: Array<{ label: string; subject: string; multiValueRdn?: boolean; expected: string[] }> = [
      { label: 'one CN', subject: '/O=Example IoT/CN=device-0001', expected: ['device-0001'] },
      { label: 'two CNs in certificate order', subject: '/CN=device-b/O=x/CN=device-a', expected: ['device-b', 'device-a'] },
      { label: 'no CN', subject: '/O=Example IoT/OU=Devices', expected: [] },
      { label: 'empty subject', subject: '/', expected: [] },
      { label: 'CN in a multi-valued RDN', subject: '/O=Example IoT+CN=device-7', multiValueRdn: true, expected: ['device-7'] },
      { label: 'CN with comma, plus, quote and slash', subject: '/CN=dev,ice\\+1"x\\/2', expected: ['dev,ice+1"x/2'] },
      { label: 'CN with non-ASCII text', subject: '/CN=Gerät-7', expected: ['Gerät-7'] },
      { label: 'serialNumber is not a CN', subject: '/serialNumber=1234/CN=device-9', expected: ['device-9'] },
    ];
    for (const testCase of cases) {
      it(`returns ${testCase.label}`, function () {
        const certificate = pki.issue({ subject: testCase.subject, issuer: root, multiValueRdn: testCase.multiValueRdn });
        expect(parseCertificate(certificate.pem).subjectCommonNames).to.deep.equal(testCase.expected);
      });
    }

    it('decodes T61String as Latin-1 and BMPString as UCS-2', function () {
      const t61 = pki.issue({ subject: '/CN=Gerät_7', issuer: root, stringMask: 'default' });
      const bmp = pki.issue({ subject: '/CN=设备_7', issuer: root, stringMask: 'pkix' });
      expect(pki.opensslAsn1Parse(t61)).to.include('T61STRING');
      expect(pki.opensslAsn1Parse(bmp)).to.include('BMPSTRING');
      expect(parseCertificate(t61.pem).subjectCommonNames).to.deep.equal(['Gerät_7']);
      expect(parseCertificate(bmp.pem).subjectCommonNames).to.deep.equal(['设备_7']);
    });

    it('decodes UniversalString, PrintableString and IA5String', function () {
      const universal = Buffer.alloc(8);
      universal.writeUInt32BE(0x1f600, 0);
      universal.writeUInt32BE(0x41, 4);
      const certificate = pki.issueWithNames({
        subjectName: derName([
          [{ oid: '2.5.4.3', tag: 0x1c, value: universal }],
          [{ oid: '2.5.4.3', tag: 0x13, value: 'printable' }],
          [{ oid: '2.5.4.3', tag: 0x16, value: 'ia5' }],
        ]),
      });
      expect(parseCertificate(certificate.pem).subjectCommonNames).to.deep.equal(['😀A', 'printable', 'ia5']);
    });

    it('rejects a CN that is not a character string', function () {
      const certificate = pki.issueWithNames({ subjectName: derName([[{ oid: '2.5.4.3', tag: 0x04, value: 'octets' }]]) });
      expectCertificateError(() => parseCertificate(certificate.pem), 'OCTET STRING CN');
    });
  });

  describe('invalid input', function () {
    it('rejects garbage, truncated and extended DER', function () {
      const der = pemToDer(device.pem);
      const cases: Record<string, Buffer> = {
        'empty buffer': Buffer.alloc(0),
        'random bytes': Buffer.from('not a certificate at all'),
        'truncated by 10 bytes': der.subarray(0, der.length - 10),
        'header only': der.subarray(0, 4),
        'trailing byte': Buffer.concat([der, Buffer.from([0])]),
        'two DER certificates': Buffer.concat([der, der]),
        'indefinite length': Buffer.concat([Buffer.from([0x30, 0x80]), der.subarray(4), Buffer.from([0, 0])]),
      };
      for (const [label, input] of Object.entries(cases)) {
        expectCertificateError(() => parseCertificate(input), label);
      }
    });

    it('rejects bad PEM', function () {
      const body = device.pem.split('\n').slice(1, -2).join('\n');
      const cases: Record<string, string> = {
        'empty string': '',
        'no PEM block': 'hello',
        'two certificates': chainPem(device, root),
        'text before the block': `subject=CN=device\n${device.pem}`,
        'missing END line': device.pem.replace('-----END CERTIFICATE-----', ''),
        'invalid base64 character': device.pem.replace(body.slice(0, 4), 'AB*D'),
        'base64 without padding': `-----BEGIN CERTIFICATE-----\nAAAAA\n-----END CERTIFICATE-----\n`,
        'private key block': '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
        'empty block': '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
      };
      for (const [label, input] of Object.entries(cases)) {
        expectCertificateError(() => parseCertificate(input), label);
      }
    });
  });
});

describe('decodeEnvoyPem', function () {
  let pki: TestPki;
  let certificate: TestCertificate;

  before(function () {
    pki = TestPki.create();
    certificate = pki.rootCa();
  });

  after(function () {
    pki.cleanup();
  });

  it('inverts the Envoy encoding of a PEM certificate', function () {
    const encoded = envoyEncodePem(certificate.pem);
    expect(encoded).to.not.match(/[\n /=]/);
    expect(decodeEnvoyPem(encoded)).to.equal(certificate.pem);
    expect(parseCertificate(decodeEnvoyPem(encoded)).sha256).to.equal(parseCertificate(certificate.pem).sha256);
  });

  it('decodes exactly once and keeps a literal plus', function () {
    expect(decodeEnvoyPem('a%253Db')).to.equal('a%3Db');
    expect(decodeEnvoyPem('a+b%2Bc')).to.equal('a+b+c');
    expect(decodeEnvoyPem('%0a%0A')).to.equal('\n\n');
  });

  it('passes PEM without escapes through unchanged', function () {
    expect(decodeEnvoyPem(certificate.pem)).to.equal(certificate.pem);
  });

  it('rejects malformed and non-ASCII percent escapes', function () {
    for (const input of ['%', 'abc%', '%0', '%G0', '%0G', '% 0A', '%C3%A4', '%80']) {
      expectCertificateError(() => decodeEnvoyPem(input), JSON.stringify(input));
    }
  });

  it('rejects input longer than the limit', function () {
    expectCertificateError(() => decodeEnvoyPem('A'.repeat(64 * 1024 + 1)), 'oversized input');
  });
});

describe('splitPemChain', function () {
  let pki: TestPki;
  let root: TestCertificate;
  let intermediate: TestCertificate;
  let device: TestCertificate;

  before(function () {
    pki = TestPki.create();
    root = pki.rootCa();
    intermediate = pki.intermediateCa(root);
    device = pki.device(intermediate, '/CN=device-0001');
  });

  after(function () {
    pki.cleanup();
  });

  it('returns every certificate block in order', function () {
    const blocks = splitPemChain(chainPem(device, intermediate, root));
    expect(blocks).to.have.length(3);
    expect(blocks.map((block) => `${block}\n`)).to.deep.equal([device.pem, intermediate.pem, root.pem]);
  });

  it('ignores text between blocks', function () {
    const text = `subject=CN=device-0001\n${device.pem}\nissuer info\n${root.pem}trailer`;
    expect(splitPemChain(text).map((block) => `${block}\n`)).to.deep.equal([device.pem, root.pem]);
  });

  it('returns an empty array for text without a certificate', function () {
    expect(splitPemChain('')).to.deep.equal([]);
    expect(splitPemChain('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')).to.deep.equal([]);
  });

  it('rejects a block without END or with non-base64 text', function () {
    expectCertificateError(() => splitPemChain(`${device.pem}-----BEGIN CERTIFICATE-----\nAAAA\n`), 'missing END');
    expectCertificateError(
      () => splitPemChain(`-----BEGIN CERTIFICATE-----\n${device.pem}`),
      'nested BEGIN line',
    );
  });
});
