import { expect } from 'chai';
import fc from 'fast-check';

import { MAX_CHAIN_CERTIFICATES, parseClientCertChainHeader, parseClientCertHeader, Rfc9440Error } from '../src/x509/index.js';
import { anyString, applyEdits, fuzzParameters, onlyThrows, replaying, stringEdits, tokenString } from './helpers/fuzz.js';

const DIGITS = [...'0123456789'];
const ALPHA = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'];
/** RFC 9110 `tchar`, plus `:` and `/`, which an sf-token allows after its first character. */
const TOKEN_CHARACTERS = [..."!#$%&'*+-.^_`|~:/0123456789", ...ALPHA];
const PRINTABLE_ASCII = Array.from({ length: 0x7f - 0x20 }, (_, index) => String.fromCharCode(0x20 + index));
const BASE64_ALPHABET = new Set([...ALPHA, ...DIGITS, '+', '/', '=']);

const digits = (minLength: number, maxLength: number) => fc.string({ unit: fc.constantFrom(...DIGITS), minLength, maxLength });
const sign = fc.constantFrom('', '-');

/** Every RFC 8941 bare item type, and RFC 9651's Date and Display String. */
const bareItem: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(sign, digits(1, 15)).map(([minus, value]) => minus + value),
  fc.tuple(sign, digits(1, 12), digits(1, 3)).map(([minus, integer, fraction]) => `${minus}${integer}.${fraction}`),
  fc.string({ unit: fc.constantFrom(...PRINTABLE_ASCII), maxLength: 20 }).map((text) => `"${text.replace(/[\\"]/g, (character) => `\\${character}`)}"`),
  fc.tuple(fc.constantFrom(...ALPHA, '*'), fc.string({ unit: fc.constantFrom(...TOKEN_CHARACTERS), maxLength: 10 })).map(([first, rest]) => first + rest),
  fc.uint8Array({ maxLength: 20 }).map((bytes) => `:${Buffer.from(bytes).toString('base64')}:`),
  fc.constantFrom('?0', '?1'),
  fc.tuple(sign, digits(1, 15)).map(([minus, value]) => `@${minus}${value}`),
  fc.string({ unit: 'binary', maxLength: 10 }).map(displayString),
);

/** Serialises text as an RFC 9651 Display String: UTF-8, with `%`, `"` and non-printable bytes as lower-case `%xx`. */
function displayString(text: string): string {
  const body = [...Buffer.from(text, 'utf8')]
    .map((byte) => (byte >= 0x20 && byte <= 0x7e && byte !== 0x25 && byte !== 0x22 ? String.fromCharCode(byte) : `%${byte.toString(16).padStart(2, '0')}`))
    .join('');
  return `%"${body}"`;
}

const parameterKey = fc
  .tuple(fc.constantFrom(...'abcxyz*'), fc.string({ unit: fc.constantFrom(...'abz019_-.*'), maxLength: 6 }))
  .map(([first, rest]) => first + rest);

/** Valid sf-params: `;`, optional spaces, a key, and optionally `=` and a bare item. */
const parameters: fc.Arbitrary<string> = fc
  .array(fc.tuple(fc.string({ unit: fc.constant(' '), maxLength: 2 }), parameterKey, fc.option(bareItem)), { maxLength: 3 })
  .map((list) => list.map(([spaces, key, value]) => `;${spaces}${key}${value === null ? '' : `=${value}`}`).join(''));

const spaces = fc.string({ unit: fc.constant(' '), maxLength: 3 });
const optionalWhitespace = fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength: 3 });

/** DER-sized byte strings: short ones for edge cases, and a few of certificate size. */
const certificateBytes = fc.oneof(
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }), weight: 3 },
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 2000 }), weight: 1 },
);

/** Byte Sequence members with parameters, and sometimes without padding. */
const member = fc.tuple(certificateBytes, fc.boolean(), parameters).map(([bytes, unpadded, params]) => {
  const base64 = Buffer.from(bytes).toString('base64');
  return { bytes: Buffer.from(bytes), text: `:${unpadded ? base64.replace(/=+$/, '') : base64}:${params}` };
});

const clientCert = fc.tuple(spaces, member, spaces).map(([before, item, after]) => ({ bytes: item.bytes, text: `${before}${item.text}${after}` }));

const clientCertChain = fc
  .tuple(spaces, fc.array(fc.tuple(member, optionalWhitespace, optionalWhitespace), { maxLength: MAX_CHAIN_CERTIFICATES }), spaces)
  .map(([before, members, after]) => ({
    certificates: members.map(([item]) => item.bytes),
    text: before + members.map(([item, beforeComma, afterComma], index) => (index === 0 ? '' : `${beforeComma},${afterComma}`) + item.text).join('') + after,
  }));

/** Characters with a meaning in Structured Fields, and a few without. */
const FIELD_TOKENS = [':', 'AQID', 'BA==', '=', '+', '/', ';', ',', ' ', '\t', '"', '\\', '?1', '@', '%', '%"', '(', ')', 'a', '*', '-', '.', '1', 'ä'];

describe('RFC 9440 parser properties', () => {
  it('round-trips Client-Cert bytes', () => {
    fc.assert(
      fc.property(clientCert, ({ bytes, text }) => {
        expect(parseClientCertHeader(text).equals(bytes), text).to.equal(true);
      }),
      fuzzParameters(),
    );
  });

  it('round-trips Client-Cert-Chain lists', () => {
    fc.assert(
      fc.property(clientCertChain, ({ certificates, text }) => {
        const parsed = parseClientCertChainHeader(text);
        expect(parsed.map((der) => der.toString('hex')), text).to.deep.equal(certificates.map((der) => der.toString('hex')));
      }),
      fuzzParameters(),
    );
  });

  it('rejects a character outside the base64 alphabet', () => {
    const foreign = anyString(1).filter((character) => character.length > 0 && !BASE64_ALPHABET.has(character));
    fc.assert(
      fc.property(member, foreign, fc.nat(), ({ text }, character, position) => {
        const end = text.indexOf(':', 1);
        const at = 1 + (position % end);
        const changed = text.slice(0, at) + character + text.slice(at);
        expect(() => parseClientCertHeader(changed), changed).to.throw(Rfc9440Error);
        expect(() => parseClientCertChainHeader(changed), changed).to.throw(Rfc9440Error);
      }),
      fuzzParameters(),
    );
  });

  it('throws only Rfc9440Error', () => {
    let accepted = 0;
    const input = fc.oneof(
      anyString(300),
      tokenString(FIELD_TOKENS),
      fc.tuple(clientCertChain, stringEdits(fc.oneof(fc.constantFrom(...FIELD_TOKENS), anyString(3)))).map(([chain, edits]) => applyEdits(chain.text, edits)),
      fc.tuple(clientCert, stringEdits(fc.oneof(fc.constantFrom(...FIELD_TOKENS), anyString(3)))).map(([item, edits]) => applyEdits(item.text, edits)),
    );
    fc.assert(
      fc.property(input, (text) => {
        onlyThrows([Rfc9440Error], () => {
          const der = parseClientCertHeader(text);
          expect(der.length).to.be.greaterThan(0);
          accepted++;
        });
        onlyThrows([Rfc9440Error], () => {
          const chain = parseClientCertChainHeader(text);
          expect(chain.length).to.be.at.most(MAX_CHAIN_CERTIFICATES);
          expect(chain.every((der) => der.length > 0)).to.equal(true);
        });
      }),
      fuzzParameters(),
    );
    // Some mutations keep the value valid, so the success path is fuzzed too.
    if (!replaying) {
      expect(accepted, 'accepted Client-Cert values').to.be.greaterThan(0);
    }
  });
});
