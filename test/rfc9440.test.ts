import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';

import {
  MAX_CHAIN_CERTIFICATES,
  MAX_CLIENT_CERT_CHARS,
  parseCertificate,
  parseClientCertChainHeader,
  parseClientCertHeader,
  Rfc9440Error,
} from '../src/x509/index.js';
import { TestPki } from './helpers/pki.js';

/** Encodes DER as an RFC 8941 Byte Sequence, the form of both RFC 9440 headers. */
function byteSequence(der: Buffer): string {
  return `:${der.toString('base64')}:`;
}

function expectMalformed(parse: () => unknown, condition: string): void {
  let thrown: unknown;
  try {
    parse();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, condition).to.be.instanceOf(Rfc9440Error);
  expect((thrown as Rfc9440Error).code, condition).to.equal('client_cert_malformed');
}

describe('RFC 9440 Client-Cert headers', () => {
  let leaf: Buffer;
  let intermediate: Buffer;
  let root: Buffer;

  before(function () {
    this.timeout(30_000);
    const pki = TestPki.create();
    try {
      const rootCa = pki.rootCa('/O=Example IoT/CN=Fleet Root CA');
      const intermediateCa = pki.intermediateCa(rootCa, '/O=Example IoT/CN=Fleet Device CA');
      const device = pki.device(intermediateCa, '/O=Example IoT/CN=device-01');
      leaf = Buffer.from(new X509Certificate(device.pem).raw);
      intermediate = Buffer.from(new X509Certificate(intermediateCa.pem).raw);
      root = Buffer.from(new X509Certificate(rootCa.pem).raw);
    } finally {
      pki.cleanup();
    }
  });

  describe('parseClientCertHeader', () => {
    it('decodes a certificate to its DER', () => {
      const der = parseClientCertHeader(byteSequence(leaf));
      expect(der.equals(leaf)).to.equal(true);
      expect(parseCertificate(der).subjectCommonNames).to.deep.equal(['device-01']);
    });

    it('skips spaces around the Item', () => {
      expect(parseClientCertHeader(`  ${byteSequence(leaf)}   `).equals(leaf)).to.equal(true);
    });

    it('accepts base64 without padding', () => {
      expect(parseClientCertHeader(':AQIDBA:')).to.deep.equal(Buffer.from([1, 2, 3, 4]));
      expect(parseClientCertHeader(':AQIDBAU:')).to.deep.equal(Buffer.from([1, 2, 3, 4, 5]));
    });

    it('accepts padding and non-zero pad bits', () => {
      expect(parseClientCertHeader(':AQIDBA==:')).to.deep.equal(Buffer.from([1, 2, 3, 4]));
      // `AQIDBB` differs from `AQIDBA` only in bits past the last byte, which recipients should not reject under RFC 8941.
      expect(parseClientCertHeader(':AQIDBB==:')).to.deep.equal(Buffer.from([1, 2, 3, 4]));
    });

    it('ignores parameters of every type', () => {
      const parameters = [
        ';a',
        ';b=1',
        ';c=-12.345',
        ';d="quoted \\"text\\" \\\\"',
        ';e=token/with:colon',
        ';f=?0',
        ';g=:AQID:',
        ';*h=@1659578233',
        ';i=%"caf%c3%a9"',
        '; j.k_l-m*=*star',
      ].join('');
      expect(parseClientCertHeader(`${byteSequence(leaf)}${parameters}`).equals(leaf)).to.equal(true);
    });

    it('accepts a value of exactly the maximum length', () => {
      const base64 = 'A'.repeat(MAX_CLIENT_CERT_CHARS - 2);
      expect(parseClientCertHeader(`:${base64}:`).equals(Buffer.from(base64, 'base64'))).to.equal(true);
    });

    const malformed: [string, string][] = [
      ['an empty value', ''],
      ['only spaces', '   '],
      ['a Token', 'MIIBqDCCAU6gAwIBAgIBBzAKBggqhkjOPQQDAjA6'],
      ['a String', '"AQIDBA=="'],
      ['an Integer', '42'],
      ['a Boolean', '?1'],
      ['an Inner List', '(:AQIDBA==:)'],
      ['a PEM block', '-----BEGIN CERTIFICATE-----'],
      ['a missing closing colon', ':AQIDBA=='],
      ['an empty Byte Sequence', '::'],
      ['a space inside the base64', ':AQID BA==:'],
      ['a line break inside the base64', ':AQID\nBA==:'],
      ['a character outside the alphabet', ':AQ*DBA==:'],
      ['base64url characters', ':-_-_:'],
      ['a non-ASCII character', ':AQIDBä==:'],
      ['partial padding', ':AQIDBA=:'],
      ['too much padding', ':AQIDBAU==:'],
      ['three padding characters', ':AQIDB===:'],
      ["'=' inside the base64", ':AQ==IDBA:'],
      ['one character left over', ':AQIDB:'],
      ['a second Item after a comma', ':AQIDBA==:, :AQIDBA==:'],
      ['text after the Item', ':AQIDBA==:x'],
      ['a leading tab', '\t:AQIDBA==:'],
      ['a trailing tab', ':AQIDBA==:\t'],
      ['a space before the parameter', ':AQIDBA==: ;a=1'],
      ['a parameter without key', ':AQIDBA==:;'],
      ['an upper-case parameter key', ':AQIDBA==:;A=1'],
      ['a parameter key starting with a digit', ':AQIDBA==:;1a=1'],
      ['a parameter without value after =', ':AQIDBA==:;a='],
      ['an unterminated String parameter', ':AQIDBA==:;a="text'],
      ['an invalid escape in a String parameter', ':AQIDBA==:;a="\\n"'],
      ['a control character in a String parameter', ':AQIDBA==:;a="\u0001"'],
      ['a non-ASCII String parameter', ':AQIDBA==:;a="ä"'],
      ['an Integer of 16 digits', ':AQIDBA==:;a=1234567890123456'],
      ['a Decimal with 4 fraction digits', ':AQIDBA==:;a=1.2345'],
      ['a Decimal with 13 integer digits', ':AQIDBA==:;a=1234567890123.5'],
      ['a Decimal ending in a dot', ':AQIDBA==:;a=1.'],
      ['a lone minus sign', ':AQIDBA==:;a=-'],
      ['a Boolean other than 0 or 1', ':AQIDBA==:;a=?2'],
      ['a Date with a fraction', ':AQIDBA==:;a=@1.5'],
      ['a Display String with upper-case hex', ':AQIDBA==:;a=%"caf%C3%A9"'],
      ['a Display String that is not UTF-8', ':AQIDBA==:;a=%"%ff"'],
      ['a percent sign without a quote', ':AQIDBA==:;a=%abc'],
      ['an invalid Byte Sequence parameter', ':AQIDBA==:;a=:*:'],
      ['a parameter value of no type', ':AQIDBA==:;a=(1)'],
    ];
    for (const [condition, value] of malformed) {
      it(`rejects ${condition}`, () => {
        expectMalformed(() => parseClientCertHeader(value), condition);
      });
    }

    it('rejects a value over the maximum length', () => {
      expectMalformed(() => parseClientCertHeader(` :${'A'.repeat(MAX_CLIENT_CERT_CHARS - 2)}:`), 'one character too long');
    });

    it('names the header and the problem in the message', () => {
      expect(() => parseClientCertHeader(':AQ*DBA==:')).to.throw(Rfc9440Error, /^Client-Cert value has '\*' at character 3/);
    });
  });

  describe('parseClientCertChainHeader', () => {
    it('decodes the chain in the shape of the RFC 9440 example', () => {
      // RFC 9440 Appendix A sends the leaf in Client-Cert and the CAs above it, in TLS order, in Client-Cert-Chain.
      const clientCert = byteSequence(leaf);
      const clientCertChain = `${byteSequence(intermediate)}, ${byteSequence(root)}`;
      expect(parseClientCertHeader(clientCert).equals(leaf)).to.equal(true);
      const chain = parseClientCertChainHeader(clientCertChain);
      expect(chain).to.have.length(2);
      expect(chain[0].equals(intermediate)).to.equal(true);
      expect(chain[1].equals(root)).to.equal(true);
      expect(parseCertificate(chain[0]).subject).to.equal('O=Example IoT, CN=Fleet Device CA');
    });

    it('reads one member without a comma', () => {
      const chain = parseClientCertChainHeader(byteSequence(intermediate));
      expect(chain).to.have.length(1);
      expect(chain[0].equals(intermediate)).to.equal(true);
    });

    it('accepts spaces and tabs around commas, and parameters', () => {
      const chain = parseClientCertChainHeader(` ${byteSequence(intermediate)};x=1 \t,\t ${byteSequence(root)};y;z="a" `);
      expect(chain.map((der) => der.toString('hex'))).to.deep.equal([intermediate.toString('hex'), root.toString('hex')]);
    });

    it('returns an empty list for an empty value', () => {
      expect(parseClientCertChainHeader('')).to.deep.equal([]);
      expect(parseClientCertChainHeader('   ')).to.deep.equal([]);
    });

    it(`accepts ${MAX_CHAIN_CERTIFICATES} members`, () => {
      const value = Array.from({ length: MAX_CHAIN_CERTIFICATES }, () => byteSequence(intermediate)).join(',');
      expect(parseClientCertChainHeader(value)).to.have.length(MAX_CHAIN_CERTIFICATES);
    });

    const malformed: [string, string][] = [
      ['a trailing comma', ':AQIDBA==:,'],
      ['a trailing comma and space', ':AQIDBA==:, '],
      ['a leading comma', ',:AQIDBA==:'],
      ['an empty member', ':AQIDBA==:,,:AQIDBA==:'],
      ['an empty member between spaces', ':AQIDBA==:, , :AQIDBA==:'],
      ['members without a comma', ':AQIDBA==: :AQIDBA==:'],
      ['an Inner List member', ':AQIDBA==:, (:AQIDBA==: :AQIDBA==:)'],
      ['a Token member', ':AQIDBA==:, AQIDBA'],
      ['a String member', '"AQIDBA=="'],
      ['an empty Byte Sequence member', ':AQIDBA==:, ::'],
      ['an invalid base64 member', ':AQIDBA==:, :AQ.DBA==:'],
      ['an invalid parameter', ':AQIDBA==:;a=?, :AQIDBA==:'],
      ['a leading tab', '\t:AQIDBA==:'],
    ];
    for (const [condition, value] of malformed) {
      it(`rejects ${condition}`, () => {
        expectMalformed(() => parseClientCertChainHeader(value), condition);
      });
    }

    it(`rejects more than ${MAX_CHAIN_CERTIFICATES} members`, () => {
      const value = Array.from({ length: MAX_CHAIN_CERTIFICATES + 1 }, () => byteSequence(intermediate)).join(',');
      expectMalformed(() => parseClientCertChainHeader(value), 'one member too many');
    });

    it('rejects a value over the maximum length', () => {
      expectMalformed(() => parseClientCertChainHeader(' '.repeat(MAX_CLIENT_CERT_CHARS + 1)), 'one character too long');
    });
  });
});
