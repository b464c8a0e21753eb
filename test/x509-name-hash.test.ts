import { expect } from 'chai';

import { CertificateError, openSslNameHash, parseCertificate } from '../src/x509/index.js';
import { derName, TestPki, type IssueOptions, type TestCertificate } from './helpers/pki.js';

const UTF8 = 0x0c;
const NUMERIC = 0x12;
const PRINTABLE = 0x13;
const T61 = 0x14;
const IA5 = 0x16;
const VISIBLE = 0x1a;
const UNIVERSAL = 0x1c;
const BMP = 0x1e;
const CN = '2.5.4.3';
const O = '2.5.4.10';
const C = '2.5.4.6';
const EMAIL = '1.2.840.113549.1.9.1';
/** INN, which OpenSSL's string table types as NumericString. */
const INN = '1.2.643.3.131.1.1';

function ucs2(text: string): Buffer {
  return Buffer.from(text, 'utf16le').swap16();
}

function ucs4(text: string): Buffer {
  const codePoints = [...text].map((character) => character.codePointAt(0)!);
  const buffer = Buffer.alloc(codePoints.length * 4);
  codePoints.forEach((codePoint, index) => buffer.writeUInt32BE(codePoint, index * 4));
  return buffer;
}

/** A self-signed certificate, so its issuer is exactly the subject under test. */
interface Variant {
  label: string;
  options?: IssueOptions;
  rawName?: Buffer;
  /** String type that `openssl asn1parse` must show, to prove the variant has the intended type. */
  expectType?: string;
}

describe('openSslNameHash', function () {
  let pki: TestPki;

  before(function () {
    pki = TestPki.create();
  });

  after(function () {
    pki.cleanup();
  });

  function make(variant: Variant): TestCertificate {
    const certificate = variant.rawName ? pki.issueWithNames({ subjectName: variant.rawName }) : pki.issue(variant.options!);
    if (variant.expectType) {
      expect(pki.opensslAsn1Parse(certificate), `${variant.label}: string type`).to.include(variant.expectType);
    }
    return certificate;
  }

  /** Checks that every variant's issuerHash equals OpenSSL's and returns OpenSSL's hashes. */
  function hashesMatchingOpenSsl(variants: Variant[]): string[] {
    return variants.map((variant) => {
      const certificate = make(variant);
      const expected = pki.opensslIssuerHash(certificate);
      const parsed = parseCertificate(certificate.pem);
      expect(parsed.issuerHash, `${variant.label}: issuerHash`).to.equal(expected);
      expect(parsed.subjectHash, `${variant.label}: subjectHash`).to.equal(pki.opensslSubjectHash(certificate));
      return expected;
    });
  }

  function expectAllEqual(variants: Variant[]): void {
    const hashes = hashesMatchingOpenSsl(variants);
    variants.forEach((variant, index) => {
      expect(hashes[index], `${variant.label} versus ${variants[0]!.label}`).to.equal(hashes[0]);
    });
  }

  function expectAllDifferent(variants: Variant[]): void {
    const hashes = hashesMatchingOpenSsl(variants);
    expect(new Set(hashes).size, `distinct hashes of ${variants.map((variant) => variant.label).join(', ')}`).to.equal(variants.length);
  }

  it('matches the reference worked example 622b8155', function () {
    const hex = '3037 310b300906035504061302 4445 31143012060355040a0c0b 4578616d706c6520496f54 3112301006035504030c09 446576696365204341';
    const name = Buffer.from(hex.replace(/ /g, ''), 'hex');
    expect(openSslNameHash(name)).to.equal('622b8155');

    const certificate = pki.issue({ subject: '/C=DE/O=Example IoT/CN=Device CA' });
    expect(pki.opensslIssuerHash(certificate)).to.equal('622b8155');
    expect(parseCertificate(certificate.pem).issuerHash).to.equal('622b8155');
  });

  it('hashes an empty name to eea339da', function () {
    expect(openSslNameHash(Buffer.from('3000', 'hex'))).to.equal('eea339da');
    const certificate = pki.issue({ subject: '/' });
    expect(pki.opensslSubjectHash(certificate)).to.equal('eea339da');
    expect(parseCertificate(certificate.pem).subjectHash).to.equal('eea339da');
  });

  it('re-sorts a multi-valued RDN after canonicalisation (ba97b1f4)', function () {
    const certificate = pki.issue({ subject: '/C=DE/O=Example IoT/CN=abcd+CN=x    y', multiValueRdn: true });
    expect(pki.opensslIssuerHash(certificate)).to.equal('ba97b1f4');
    expect(parseCertificate(certificate.pem).issuerHash).to.equal('ba97b1f4');
  });

  it('folds ASCII case, inner whitespace runs and outer whitespace', function () {
    expectAllEqual([
      { label: 'plain', options: { subject: '/C=DE/O=Example IoT/CN=Device CA' } },
      { label: 'upper case', options: { subject: '/C=de/O=EXAMPLE IOT/CN=DEVICE CA' } },
      { label: 'repeated inner spaces', options: { subject: '/C=DE/O=Example     IoT/CN=Device  CA' } },
      { label: 'leading and trailing spaces', options: { subject: '/C=DE/O=  Example IoT /CN= Device CA   ' } },
      { label: 'TAB inside', options: { subject: '/C=DE/O=Example\tIoT/CN=Device\t\tCA' } },
      { label: 'CR, LF, VT and FF', options: { subject: '/C=DE/O=Example\r\n\v\fIoT/CN=\nDevice CA\r' } },
    ]);
  });

  it('folds PrintableString, UTF8String, T61String and BMPString of the same ASCII text', function () {
    expectAllEqual([
      { label: 'UTF8String', options: { subject: '/O=Example IoT/CN=Device CA' }, expectType: 'UTF8STRING' },
      {
        label: 'PrintableString',
        options: { subject: '/O=Example IoT/CN=Device CA', stringMask: 'default' },
        expectType: 'PRINTABLESTRING',
      },
      {
        label: 'raw BMPString',
        rawName: derName([[{ oid: O, tag: BMP, value: ucs2('Example IoT') }], [{ oid: CN, tag: BMP, value: ucs2('DEVICE CA') }]]),
      },
      {
        label: 'raw T61String',
        rawName: derName([[{ oid: O, tag: T61, value: 'example iot' }], [{ oid: CN, tag: T61, value: 'Device CA' }]]),
      },
    ]);
  });

  it('folds the string types openssl req picks for an underscore', function () {
    expectAllEqual([
      { label: 'UTF8String', options: { subject: '/CN=device_ca' }, expectType: 'UTF8STRING' },
      { label: 'T61String', options: { subject: '/CN=device_ca', stringMask: 'nombstr' }, expectType: 'T61STRING' },
      { label: 'BMPString', options: { subject: '/CN=DEVICE_CA', stringMask: 'pkix' }, expectType: 'BMPSTRING' },
    ]);
  });

  it('reads T61String as Latin-1 so it equals the UTF-8 and BMP forms', function () {
    expectAllEqual([
      { label: 'UTF8String', options: { subject: '/CN=Gerät_CA' }, expectType: 'UTF8STRING' },
      { label: 'T61String', options: { subject: '/CN=Gerät_CA', stringMask: 'default' }, expectType: 'T61STRING' },
      { label: 'BMPString', options: { subject: '/CN=GERäT_CA', stringMask: 'pkix' }, expectType: 'BMPSTRING' },
    ]);
  });

  it('folds IA5String e-mail addresses and UTF8String', function () {
    expectAllEqual([
      { label: 'IA5String', options: { subject: '/CN=ca/emailAddress=PKI@Example.COM' }, expectType: 'IA5STRING' },
      { label: 'IA5String lower case', options: { subject: '/CN=ca/emailAddress=pki@example.com' } },
      {
        label: 'raw UTF8String',
        rawName: derName([[{ oid: CN, tag: UTF8, value: 'CA' }], [{ oid: EMAIL, tag: UTF8, value: ' pki@example.com ' }]]),
      },
    ]);
  });

  it('folds UniversalString, which openssl req cannot write', function () {
    expectAllEqual([
      { label: 'UTF8String', options: { subject: '/C=DE/CN=Device CA' } },
      {
        label: 'raw UniversalString',
        rawName: derName([[{ oid: C, tag: PRINTABLE, value: 'DE' }], [{ oid: CN, tag: UNIVERSAL, value: ucs4('Device  CA') }]]),
      },
    ]);
  });

  it('rejects a VisibleString value, as OpenSSL does', function () {
    // OpenSSL 3.0 decodes attribute values as ASN1_PRINTABLE, whose type mask has no VisibleString.
    const certificate = pki.issueWithNames({ subjectName: derName([[{ oid: CN, tag: VISIBLE, value: 'Device CA' }]]) });
    expect(() => pki.opensslIssuerHash(certificate)).to.throw(/openssl x509/);
    expect(() => parseCertificate(certificate.pem)).to.throw(CertificateError);
  });

  it('folds multi-valued RDNs typed in either order', function () {
    expectAllEqual([
      { label: 'abcd first', options: { subject: '/O=Example IoT/CN=abcd+CN=x y', multiValueRdn: true } },
      { label: 'x y first', options: { subject: '/O=Example IoT/CN=x y+CN=abcd', multiValueRdn: true } },
      { label: 'upper case, extra spaces', options: { subject: '/O=Example IoT/CN=X    Y+CN=ABCD', multiValueRdn: true } },
    ]);
  });

  it('keeps non-ASCII case: Ä and ä differ', function () {
    expectAllDifferent([
      { label: 'Ä', options: { subject: '/CN=Äx Device CA' } },
      { label: 'ä', options: { subject: '/CN=äx Device CA' } },
    ]);
  });

  it('keeps NumericString bytes: spacing differs', function () {
    expectAllDifferent([
      { label: 'one space', options: { subject: '/CN=ca/INN=12 34' }, expectType: 'NUMERICSTRING' },
      { label: 'two spaces', options: { subject: '/CN=ca/INN=12  34' } },
      {
        label: 'raw leading space',
        rawName: derName([[{ oid: CN, tag: UTF8, value: 'ca' }], [{ oid: INN, tag: NUMERIC, value: ' 12 34' }]]),
      },
    ]);
  });

  it('keeps non-ASCII whitespace: NO-BREAK SPACE differs from SPACE', function () {
    expectAllDifferent([
      { label: 'SPACE', options: { subject: '/CN=Device CA' } },
      { label: 'NO-BREAK SPACE', options: { subject: '/CN=Device\u00a0CA' } },
      { label: 'IDEOGRAPHIC SPACE', options: { subject: '/CN=Device\u3000CA' } },
    ]);
  });

  it('keeps RDN structure: one multi-valued RDN differs from two RDNs', function () {
    expectAllDifferent([
      { label: 'multi-valued', options: { subject: '/O=Example IoT+CN=Device CA', multiValueRdn: true } },
      { label: 'two RDNs', options: { subject: '/O=Example IoT/CN=Device CA' } },
      { label: 'two RDNs reversed', options: { subject: '/CN=Device CA/O=Example IoT' } },
    ]);
  });

  it('rejects invalid UTF-8, which OpenSSL cannot load either', function () {
    const certificate = pki.issueWithNames({ subjectName: derName([[{ oid: CN, tag: UTF8, value: Buffer.from([0x41, 0xff]) }]]) });
    expect(() => pki.opensslIssuerHash(certificate)).to.throw(/openssl x509/);
    expect(() => parseCertificate(certificate.pem)).to.throw(CertificateError);
  });

  it('rejects an odd-length BMPString and a surrogate in a UniversalString', function () {
    expect(() => openSslNameHash(derName([[{ oid: CN, tag: BMP, value: Buffer.from([0x00, 0x41, 0x00]) }]]))).to.throw(CertificateError);
    expect(() => openSslNameHash(derName([[{ oid: CN, tag: UNIVERSAL, value: Buffer.from([0, 0, 0xd8, 0]) }]]))).to.throw(CertificateError);
  });

  it('skips an empty RDN, as OpenSSL 3.0 does', function () {
    const commonName = { oid: CN, tag: UTF8, value: 'Device CA' };
    expectAllEqual([
      { label: 'without empty RDN', rawName: derName([[commonName]]) },
      { label: 'with empty RDN', rawName: derName([[commonName], []]) },
    ]);
  });

  it('rejects malformed names with CertificateError', function () {
    const cases: Record<string, string> = {
      empty: '',
      'SET instead of SEQUENCE': '3100',
      'truncated OBJECT IDENTIFIER': '300731053003060355',
      'trailing byte': '300000',
      'attribute without value': '3009310730050603550403',
    };
    for (const [label, hex] of Object.entries(cases)) {
      expect(() => openSslNameHash(Buffer.from(hex, 'hex')), label).to.throw(CertificateError);
    }
  });

  it('hashes IA5String e-mail with upper-case non-ASCII Latin-1 bytes unchanged', function () {
    // Byte 0xC4 is Latin-1 'Ä'. Canonicalisation converts it to UTF-8 C3 84 and keeps its case.
    expectAllDifferent([
      { label: 'Ä in IA5String', rawName: derName([[{ oid: EMAIL, tag: IA5, value: Buffer.from([0xc4, 0x40, 0x78]) }]]) },
      { label: 'ä in IA5String', rawName: derName([[{ oid: EMAIL, tag: IA5, value: Buffer.from([0xe4, 0x40, 0x78]) }]]) },
    ]);
    expectAllEqual([
      { label: 'Ä in IA5String', rawName: derName([[{ oid: EMAIL, tag: IA5, value: Buffer.from([0xc4, 0x40, 0x58]) }]]) },
      { label: 'Ä in UTF8String', rawName: derName([[{ oid: EMAIL, tag: UTF8, value: 'Ä@x' }]]) },
    ]);
  });
});
