import { expect } from 'chai';

import { decodeEnvoyPem, MAX_XFCC_CHARS, parseCertificate, parseXfcc, XfccError } from '../src/x509/index.js';
import { chainPem, envoyEncodePem, TestPki } from './helpers/pki.js';

function expectMalformed(value: string, label: string): void {
  let thrown: unknown;
  try {
    parseXfcc(value);
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `${label}: thrown error`).to.be.instanceOf(XfccError);
  expect((thrown as XfccError).code, `${label}: code`).to.equal('xfcc_malformed');
}

describe('parseXfcc', function () {
  it('parses the element Envoy writes with every detail enabled', function () {
    const pki = TestPki.create();
    try {
      const root = pki.rootCa();
      const device = pki.device(root, '/O=b/CN=a');
      const sha256 = parseCertificate(device.pem).sha256;
      const header =
        `By=spiffe://cluster.local/ns=edge/sa=envoy;Hash=${sha256};Cert="${envoyEncodePem(device.pem)}";` +
        `Chain="${envoyEncodePem(chainPem(device, root))}";Subject="CN=a,O=b";URI=;DNS=device.example;DNS=alt.example`;

      const elements = parseXfcc(header);
      expect(elements).to.have.length(1);
      const element = elements[0]!;
      expect([...element.keys()]).to.deep.equal(['by', 'hash', 'cert', 'chain', 'subject', 'uri', 'dns']);
      expect(element.get('by')).to.deep.equal(['spiffe://cluster.local/ns=edge/sa=envoy']);
      expect(element.get('hash')).to.deep.equal([sha256]);
      expect(element.get('subject')).to.deep.equal(['CN=a,O=b']);
      expect(element.get('uri')).to.deep.equal(['']);
      expect(element.get('dns')).to.deep.equal(['device.example', 'alt.example']);
      expect(parseCertificate(decodeEnvoyPem(element.get('cert')![0]!)).sha256).to.equal(sha256);
      expect(decodeEnvoyPem(element.get('chain')![0]!)).to.equal(chainPem(device, root));
    } finally {
      pki.cleanup();
    }
  });

  it('splits two elements and keeps their order', function () {
    const elements = parseXfcc('Hash=aaa;DNS=x,Hash=bbb;DNS=y;DNS=z');
    expect(elements).to.have.length(2);
    expect(elements[0]!.get('hash')).to.deep.equal(['aaa']);
    expect(elements[0]!.get('dns')).to.deep.equal(['x']);
    expect(elements[1]!.get('hash')).to.deep.equal(['bbb']);
    expect(elements[1]!.get('dns')).to.deep.equal(['y', 'z']);
  });

  it('matches keys without regard to case', function () {
    const [element] = parseXfcc('HASH=a;hash=b;Subject="x"');
    expect(element!.get('hash')).to.deep.equal(['a', 'b']);
    expect(element!.get('subject')).to.deep.equal(['x']);
    expect(element!.has('Subject')).to.equal(false);
  });

  it('does not split on separators inside quotes', function () {
    const [element, ...rest] = parseXfcc('Subject="CN=a;b,c=d";Hash=h');
    expect(rest).to.have.length(0);
    expect(element!.get('subject')).to.deep.equal(['CN=a;b,c=d']);
    expect(element!.get('hash')).to.deep.equal(['h']);
  });

  it('unescapes \\" and \\\\ and keeps other backslashes', function () {
    const [element] = parseXfcc('Subject="CN=\\"quoted\\" \\\\ back\\,slash"');
    expect(element!.get('subject')).to.deep.equal(['CN="quoted" \\ back\\,slash']);
  });

  it('splits an unquoted value at its first equals sign', function () {
    const [element] = parseXfcc('URI=spiffe://x/a=b=c;DNS=d');
    expect(element!.get('uri')).to.deep.equal(['spiffe://x/a=b=c']);
  });

  it('trims ASCII whitespace around keys and unquoted values', function () {
    const elements = parseXfcc(' Hash = abc ; DNS=x , Hash=def ');
    expect(elements[0]!.get('hash')).to.deep.equal(['abc']);
    expect(elements[0]!.get('dns')).to.deep.equal(['x']);
    expect(elements[1]!.get('hash')).to.deep.equal(['def']);
  });

  it('keeps whitespace inside a quoted value', function () {
    const [element] = parseXfcc('Subject=" CN=a "');
    expect(element!.get('subject')).to.deep.equal([' CN=a ']);
  });

  it('rejects malformed values', function () {
    const cases: Record<string, string> = {
      'empty value': '',
      'only whitespace': '   ',
      'unterminated quote': 'Hash=a;Cert="abc',
      'backslash before end inside quote': 'Cert="abc\\',
      'escaped closing quote only': 'Cert="abc\\"',
      'pair without equals': 'Hash=a;Cert',
      'empty key': 'Hash=a;=b',
      'key with space inside': 'Ha sh=a',
      'key with a quote': 'Ha"sh=a',
      'trailing semicolon': 'Hash=a;',
      'trailing comma': 'Hash=a,',
      'empty element': 'Hash=a,,Hash=b',
      'quote inside unquoted value': 'Hash=a"b',
      'text after closing quote': 'Subject="a"b;Hash=c',
    };
    for (const [label, value] of Object.entries(cases)) {
      expectMalformed(value, label);
    }
  });

  it(`rejects values longer than ${MAX_XFCC_CHARS} characters`, function () {
    expectMalformed(`Hash=${'a'.repeat(MAX_XFCC_CHARS)}`, 'oversized value');
    expect(parseXfcc(`Hash=${'a'.repeat(MAX_XFCC_CHARS - 5)}`)).to.have.length(1);
  });
});
